"""redis-py's reply parsers side by side: hiredis (C) against the pure-Python one, on the limiter's calls.

Run: ``.venv/bin/python bench/redis_parser.py [--calls 3000] [--rounds 7] [--loop uvloop|asyncio]``

Two clients built as the app builds its own (``app.storage.redis.client_options``: one pool each, the
0.5 s socket timeout, no retries) against the Redis at 127.0.0.1:6379, differing only in
``parser_class``. In each round each client makes ``--calls`` calls of each kind, the order of the two
clients alternating from round to round so both see the same machine load: the GCRA script on four keys
(EVALSHA, the limiter's check) and an MGET of two keys (the lock lookup). The best round of each is
printed, in microseconds per call, and the ratio. Keys live under a prefix of this run's own and are
deleted afterwards. Prints nothing but a note when hiredis is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser
from redis.asyncio import Redis
from redis.utils import HIREDIS_AVAILABLE

from app.risk.redis_backend import GCRA_LUA
from app.storage.redis import client_options
from bench.machine import machine_note

URL = "redis://127.0.0.1:6379/5"


async def one_round(client: Redis, script: object, prefix: str, calls: int) -> tuple[float, float]:
    keys = [f"{prefix}k{i}" for i in range(4)]
    args = [int(time.time() * 1e6), 1, 0] + [1_000_000, 30_000_000] * 4
    started = time.perf_counter()
    for _ in range(calls):
        await script(keys=keys, args=args)  # type: ignore[operator]
    scripted = (time.perf_counter() - started) / calls
    started = time.perf_counter()
    for _ in range(calls):
        await client.mget(keys[:2])
    looked_up = (time.perf_counter() - started) / calls
    return scripted, looked_up


async def measure(calls: int, rounds: int) -> dict[str, tuple[float, float]]:
    prefix = f"portcullis-bench:{uuid.uuid4().hex}:"
    parsers = {"hiredis": _AsyncHiredisParser, "pure Python": _AsyncRESP2Parser}
    clients = {
        name: Redis.from_url(URL, parser_class=cls, **client_options(0.5)) for name, cls in parsers.items()
    }
    scripts = {name: c.register_script(GCRA_LUA) for name, c in clients.items()}
    best: dict[str, tuple[float, float]] = {name: (float("inf"), float("inf")) for name in clients}
    try:
        for name in clients:  # warm-up: connections, the script cached in Redis
            await one_round(clients[name], scripts[name], prefix, 200)
        for r in range(rounds):
            order = list(clients) if r % 2 == 0 else list(reversed(clients))
            for name in order:
                s, m = await one_round(clients[name], scripts[name], prefix, calls)
                best[name] = (min(best[name][0], s), min(best[name][1], m))
    finally:
        keys = [k async for k in clients["hiredis"].scan_iter(match=prefix + "*")]
        if keys:
            await clients["hiredis"].delete(*keys)
        for c in clients.values():
            await c.aclose()
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    if not HIREDIS_AVAILABLE:
        print("hiredis is not installed: nothing to compare (pip install hiredis)")
        return 0
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    print(f"machine: {machine_note()}, load average {os.getloadavg()[0]:.1f}, event loop: {args.loop}")
    best = asyncio.run(measure(args.calls, args.rounds))
    print(f"best of {args.rounds} rounds of {args.calls} calls, us per call:")
    print(f"{'parser':<12}{'EVALSHA (4 keys)':>18}{'MGET (2 keys)':>16}")
    for name, (s, m) in best.items():
        print(f"{name:<12}{s * 1e6:>18.1f}{m * 1e6:>16.1f}")
    (hs, hm), (ps, pm) = best["hiredis"], best["pure Python"]
    print(f"pure Python / hiredis: EVALSHA {ps / hs:.2f}x, MGET {pm / hm:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
