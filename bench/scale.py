"""Scale-out over workers: sign-ins/s, refreshes/s and introspections/s with 1, 2 and 4 workers.

A real ``portcullis serve --workers N`` on a fresh PostgreSQL database (PORTCULLIS_TEST_DATABASE_URL), one
httpx client process on the same machine, 3 passes over the worker counts (the order rotated each
pass), medians with ranges. Each phase is timed alone:

- sign-ins: ``POST /siwe/verify`` of messages signed in advance (their nonces fetched before the clock
  starts), so the client does no signing while timed;
- refreshes: ``POST /token`` (refresh_token) of the sign-ins' refresh tokens, each once;
- introspections: ``POST /introspect`` of the sign-ins' access tokens by a client_secret_post client.

Prints per phase the rate, p50/p99 latency, the speed-up over 1 worker, the RSS of each worker, and for
sign-ins the CPU milliseconds per sign-in of the server (all its processes) and of the PostgreSQL backends
serving its database, with the ceiling the machine's cores give at that cost.

    PORTCULLIS_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/scale.py [--requests 1500] [--concurrency 32] [--workers 1,2,4] [--passes 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.login_http import Wallet, _pg_database, cpu_seconds, message, pct, postgres_backends
from bench.machine import machine_note
from tests.integration.server import ServerProcess

PORT = 18320
SECRET = "bench-introspecting-client-secret-0123456789abcdef"


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (uvicorn's workers and their helpers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_pids(pid: int, workers: int) -> list[int]:
    """The serving processes: the server itself with one worker, else its children that run the app."""
    if workers == 1:
        return [pid]
    kids = [p for p in descendants(pid) if p != pid]
    return sorted(kids, key=rss_mb, reverse=True)[:workers]


class Meter:
    def __init__(self, pid: int, database: str) -> None:
        self.pid, self.database = pid, database

    def read(self) -> tuple[dict[int, float], dict[int, float]]:
        server = {p: cpu_seconds(p) for p in descendants(self.pid)}
        return server, {p: cpu_seconds(p) for p in postgres_backends(self.database)}

    @staticmethod
    def used(
        before: tuple[dict[int, float], dict[int, float]], after: tuple[dict[int, float], ...]
    ) -> list[float]:
        return [sum(v - b.get(p, 0.0) for p, v in a.items()) for b, a in zip(before, after, strict=True)]


async def timed(
    calls: list[Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]], url: str, concurrency: int
) -> tuple[float, list[float], list[httpx.Response]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    replies: list[httpx.Response] = []
    queue = list(reversed(calls))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            while queue:
                call = queue.pop()
                start = time.perf_counter()
                reply = await call(client)
                latencies.append(time.perf_counter() - start)
                if reply.status_code != 200:
                    raise RuntimeError(f"{reply.request.url.path}: {reply.status_code} {reply.text[:200]}")
                replies.append(reply)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies, replies


async def signed(url: str, n: int) -> list[dict[str, str]]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one() -> dict[str, str]:
            wallet = Wallet()
            offer = (await client.post("/siwe/nonce")).json()
            text = message(offer, wallet.address)
            return {"message": text, "signature": wallet.sign(text)}

        out: list[dict[str, str]] = []
        for start in range(0, n, 50):
            out += await asyncio.gather(*(one() for _ in range(min(50, n - start))))
        return out


def run_config(workers: int, pg_admin: str, requests: int, concurrency: int, tmp: Path) -> dict[str, object]:
    name = f"portcullis_scale_{uuid.uuid4().hex[:8]}"
    clients = tmp / f"clients-{workers}.json"
    clients.write_text(
        json.dumps(
            [
                {
                    "client_id": "rs",
                    "grant_types": ["client_credentials"],
                    "response_types": [],
                    "token_endpoint_auth_method": "client_secret_post",
                    "client_secret": SECRET,
                }
            ]
        )
    )
    env = {
        "PORTCULLIS_RATE_LIMITS": "false",  # one client machine plays many users
        "PORTCULLIS_DEV_CHAIN": "false",
        "PORTCULLIS_COMPLIANCE": "off",
        "PORTCULLIS_WORKERS": str(workers),
        "PORTCULLIS_CLIENTS_FILE": str(clients),
        "PORTCULLIS_DATABASE_URL": _pg_database(pg_admin, name, create=True),
    }
    data = tmp / f"data-{workers}"
    data.mkdir()
    result: dict[str, object] = {"workers": workers}
    try:
        with ServerProcess(data, port=PORT, **env) as server:
            assert server.proc is not None
            meter = Meter(server.proc.pid, name)
            asyncio.run(signed(server.url, 20 * workers))  # warm every worker's pools
            bodies = asyncio.run(signed(server.url, requests))
            before, client_before = meter.read(), time.process_time()
            sign_ins = [
                (lambda c, b=b: c.post("/siwe/verify", json=b))  # type: ignore[misc]
                for b in bodies
            ]
            elapsed, lat, replies = asyncio.run(timed(sign_ins, server.url, concurrency))
            server_cpu, pg_cpu = Meter.used(before, meter.read())
            client_cpu = time.process_time() - client_before
            result["sign-ins"] = (requests / elapsed, pct(lat, 50), pct(lat, 99))
            result["cpu"] = tuple(1000 * used / requests for used in (server_cpu, pg_cpu, client_cpu))
            tokens = [r.json() for r in replies]
            intros = [
                (
                    lambda c, t=t: c.post(  # type: ignore[misc]
                        "/introspect",
                        data={"token": t["access_token"], "client_id": "rs", "client_secret": SECRET},
                    )
                )
                for t in tokens
            ]
            elapsed, lat, _ = asyncio.run(timed(intros, server.url, concurrency))
            result["introspections"] = (requests / elapsed, pct(lat, 50), pct(lat, 99))
            refreshes = [
                (
                    lambda c, t=t: c.post(  # type: ignore[misc]
                        "/token", data={"grant_type": "refresh_token", "refresh_token": t["refresh_token"]}
                    )
                )
                for t in tokens
            ]
            elapsed, lat, _ = asyncio.run(timed(refreshes, server.url, concurrency))
            result["refreshes"] = (requests / elapsed, pct(lat, 50), pct(lat, 99))
            result["rss"] = [rss_mb(p) for p in worker_pids(server.proc.pid, workers)]
    finally:
        _pg_database(pg_admin, name, create=False)
    return result


def _median_range(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--passes", type=int, default=3, help="interleaved passes over the worker counts")
    args = parser.parse_args()
    pg = os.environ.get("PORTCULLIS_TEST_DATABASE_URL")
    if not pg:
        print("bench/scale.py skipped: PORTCULLIS_TEST_DATABASE_URL is not set (workers need PostgreSQL)")
        return 0
    cores = os.cpu_count() or 1
    counts = [int(w) for w in args.workers.split(",")]
    print(f"machine: {machine_note()}; the load client and PostgreSQL share these cores with the server")
    print(f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{args.requests} requests per phase, concurrency {args.concurrency}, {args.passes} passes; each pass"
        " runs every worker count once, the order rotated from pass to pass"
    )
    runs: dict[int, list[dict[str, object]]] = {w: [] for w in counts}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.passes):
            order = counts[n % len(counts) :] + counts[: n % len(counts)]
            for workers in order:
                where = Path(tmp) / f"pass-{n}"
                where.mkdir(exist_ok=True)
                runs[workers].append(run_config(workers, pg, args.requests, args.concurrency, where))
                print(
                    f"  pass {n + 1}: {workers} worker(s) done, load average {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    base = counts[0]
    print(
        f"{'phase':<15} {'workers':>7} {'median/s':>9} {'range/s':>13} {f'x {base} wkr':>8}"
        f" {'p50 ms':>8} {'p99 ms':>8}"
    )
    for phase in ("sign-ins", "refreshes", "introspections"):
        base_rate = _median_range([r[phase][0] for r in runs[base]])[0]  # type: ignore[index]
        for workers in counts:
            rows = runs[workers]
            rate, low, high = _median_range([r[phase][0] for r in rows])  # type: ignore[index]
            p50 = statistics.median(r[phase][1] for r in rows)  # type: ignore[index]
            p99 = statistics.median(r[phase][2] for r in rows)  # type: ignore[index]
            span = f"{low:.1f}-{high:.1f}"
            print(
                f"{phase:<15} {workers:>7} {rate:>9.1f} {span:>13} {rate / base_rate:>8.2f}"
                f" {p50:>8.1f} {p99:>8.1f}"
            )
    print(
        f"{'workers':>7} {'RSS per worker MB':>18} {'server cpu ms':>13} {'pg cpu ms':>9}"
        f" {'client cpu ms':>13} {'ceiling/s':>9} {'with client/s':>13}"
    )
    for workers in counts:
        rows = runs[workers]
        server_ms, pg_ms, client_ms = (
            statistics.median(r["cpu"][i] for r in rows)  # type: ignore[index]
            for i in range(3)
        )
        ceiling = cores * 1000 / (server_ms + pg_ms)
        with_client = cores * 1000 / (server_ms + pg_ms + client_ms)
        rss = "/".join(f"{m:.0f}" for m in rows[-1]["rss"])  # type: ignore[attr-defined]
        print(
            f"{workers:>7} {rss:>18} {server_ms:>13.2f} {pg_ms:>9.2f} {client_ms:>13.2f}"
            f" {ceiling:>9.0f} {with_client:>13.0f}"
        )
    print(
        f"medians of the passes; cpu ms are per sign-in; RSS from the last pass; ceiling = {cores} cores x"
        " 1000 ms / (server + PostgreSQL cpu ms), 'with client' adds the load client's own cpu ms (it runs on"
        " the same cores)"
    )
    print(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
