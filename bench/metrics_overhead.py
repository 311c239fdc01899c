"""What the request instrumentation costs per request, in process: a minimal ASGI app called directly, with
and without app.http.telemetry's middleware (log context, route-template metrics, the access log at its
production-quiet level), plus the per-sign-in counters (one sign-in outcome, one token grant). Rounds are
interleaved (bare, instrumented, bare, ...) and the medians and ranges printed with their difference.

    .venv/bin/python bench/metrics_overhead.py [--requests 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.routing import Route

from app.http.access_log import ACCESS_LOGGER, AccessLog
from app.http.telemetry import Telemetry
from app.metrics import Metrics
from app.settings import load_settings
from bench.machine import machine_note

ROUTE = Route("/siwe/verify", lambda request: None, methods=["POST"])


async def endpoint(scope: dict[str, Any], receive: Any, send: Any) -> None:
    scope["route"] = ROUTE  # what Starlette's router leaves in the scope
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def sink(_message: Any) -> None:
    return None


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/siwe/verify",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 5000),
        "state": {"request_id": "r1"},
    }


async def round_us(app: Any, requests: int, metrics: Metrics | None) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        await app(scope(), receive, sink)
        if metrics is not None:  # what a sign-in adds in the cores (app.oauth.signin)
            metrics.signed_in.inc()
            metrics.issued["siwe"].inc()
    return (time.perf_counter() - start) / requests * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)  # PORTCULLIS_LOG_LEVEL=warning
    metrics = Metrics()
    instrumented = Telemetry(endpoint, metrics, AccessLog(load_settings(data_dir=Path("/tmp"))))
    bare: list[float] = []
    timed: list[float] = []

    async def run() -> None:
        for _ in range(args.rounds):
            bare.append(await round_us(endpoint, args.requests, None))
            timed.append(await round_us(instrumented, args.requests, metrics))

    asyncio.run(run())
    print(f"machine: {machine_note()}")
    for name, values in (("bare ASGI call", bare), ("telemetry + counters", timed)):
        low, high = min(values), max(values)
        print(f"{name:<21} median {statistics.median(values):6.2f} us, range {low:.2f}-{high:.2f}")
    extra = statistics.median(timed) - statistics.median(bare)
    print(
        f"instrumentation per request: {extra:.2f} us (median difference, {args.rounds} interleaved rounds)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
