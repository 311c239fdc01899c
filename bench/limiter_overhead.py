"""What rate limiting adds to a sign-in: the same sign-ins with and without the limiter, side by side.

Run: ``.venv/bin/python bench/limiter_overhead.py [--pairs 300] [--history 400] [--iterations 2000]
[--controls] [--redis-rtt-ms 0]``

1. Apps in this process (``tests.conftest.running_app``), each on a fresh SQLite file of its own, sharing
   one fake clock, differing only in the request guard (``app.risk.guard``):
   ``without``: limits off (PORTCULLIS_RATE_LIMITS=false), no Redis; the failure-spike lock lookup that
   every request makes stays, in memory. ``memory``: limits on, in this process. ``redis``: limits on and
   the lock lookups too, in the Redis at 127.0.0.1:6379 through redis-py's asyncio client (hiredis's
   reply parser when it is installed; the run prints which) under a key prefix of this run's own (skipped
   when it does not answer), as a deployment with several replicas runs. And ``neither``: ``without``
   with the risk engine cut out too, as ``bench/risk_overhead.py`` does it (no assessment, no indexes of
   its own), for the cost of the two together. Two controls where Redis answers: ``memory+ping``, the
   in-memory limiter plus one awaited Redis PING per guarded request (the round trip any limiter that
   asks a shared store per request must make, with no script and none of our code), and ``redis
   waited``, the Redis guard with its gate awaited before the request's work instead of beside it
   (``--controls``; two more apps in one process make every figure noisier, so they are off by default).
   ``--redis-rtt-ms`` puts ``bench/delay_relay.py`` (a process of its own) between every app and Redis,
   adding that much to each round trip: Redis on another host.
   The same sign-ins go to every app: first ``--history`` untimed ones (then the clock moves two days
   on), then the timed rounds. 40 wallets, each from an IP of its own with its own device id, the
   clock moving 30 s per round so the default limits allow every call (the allowed path is the common
   one); each round one wallet signs in on every app, in an order that rotates from round to round so
   all see the same machine load. One sign-in is ``POST /siwe/nonce`` + ``POST /siwe/verify``, timed
   around the two requests only (the client's signing is excluded); the risk engine runs in all but
   ``neither``, as shipped. The first ``WARM_UP`` rounds are not counted. The added cost is given as the
   difference of the medians and as the median of the differences within each round, as a share of the
   median sign-in of the app compared with; the verdict needs both under the target.
2. Where it goes: the limiter's calls for one sign-in timed on their own, as the endpoints make them:
   ``check("nonce")``, ``check("verify")``, ``redeem_nonce`` and the lock lookup (``detector.locked``),
   ``--iterations`` sign-ins' worth with a fresh IP and address each time.

Runs on uvloop by default, as ``portcullis serve`` does (uvicorn[standard]); ``--loop asyncio`` for the
standard loop. Target: the limiter's cost per sign-in < 10 % of the sign-in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis
from redis.utils import HIREDIS_AVAILABLE
from sqlalchemy import text

from app.risk.anomaly import AnomalyDetector
from app.risk.counters import CounterStore, MemoryCounterStore
from app.risk.guard import ADMITTED, Gate, Guard, build_guard
from app.risk.history import INDEXES
from app.risk.limits import DEFAULT_LIMITS, LimiterBackend, RateLimiter
from app.risk.memory import MemoryBackend
from app.risk.redis_backend import RedisBackend, RedisCounterStore, RedisLink
from app.storage.redis import client_options
from bench.machine import machine_note
from bench.risk_overhead import WALLETS, WARM_UP, Side, Timings, Wallet, fresh_database
from tests.conftest import FakeClock, make_settings, running_app

REDIS_URL = "redis://127.0.0.1:6379/0"
TARGET = 0.10
STEP = 30.0  # seconds of fake time per round
WITHOUT, NEITHER = "without", "neither"
PING, WAITED = "memory+ping", "redis waited"
CALLS = ("check nonce", "check verify", "redeem_nonce", "detector.locked")


class WaitedGuard(Guard):
    """The shipped Redis guard with its gate awaited at once: the request's work does not overlap the
    round trip. Against ``redis``, it shows what the overlap saves."""

    __slots__ = ()

    async def begin(
        self, endpoint: str, *, ip: str | None, address: str | None = None, client_id: str | None = None
    ) -> Gate:
        gate = await super().begin(endpoint, ip=ip, address=address, client_id=client_id)
        await gate.wait()
        return ADMITTED


class PingGuard(Guard):
    """The in-memory guard plus one awaited Redis PING per guarded request: what a single round trip to
    the same Redis costs, with no script and no work of ours. Against ``redis``, it shows what our guard
    costs beyond the round trip that any limiter sharing a store per request must make."""

    __slots__ = ("pinger",)

    async def begin(
        self, endpoint: str, *, ip: str | None, address: str | None = None, client_id: str | None = None
    ) -> Gate:
        await self.pinger.ping()
        return await super().begin(endpoint, ip=ip, address=address, client_id=client_id)

    async def close(self) -> None:
        await self.pinger.aclose()
        await super().close()


def guard_for(name: str, settings: Any, clock: FakeClock, prefix: str, redis_url: str) -> Guard:
    g = build_guard(settings, clock, redis_prefix=prefix)
    if name == WAITED:
        return WaitedGuard(g.limiter, g.detector, g.backend, g.clock, g.shared)
    if name == PING:
        pinging = PingGuard(g.limiter, g.detector, g.backend, g.clock, g.shared)
        pinging.pinger = Redis.from_url(redis_url, **client_options(0.5))
        return pinging
    return g


async def live(pairs: int, history: int, prefix: str, redis_url: str | None, controls: bool) -> Timings:
    clock = FakeClock()
    wallets = [Wallet(k) for k in range(WALLETS)]  # each from an IP of its own
    ips = {w.ip for w in wallets}
    timings = Timings()
    variants: dict[str, dict[str, Any]] = {
        NEITHER: {"rate_limits": False},
        WITHOUT: {"rate_limits": False},
        "memory": {"rate_limits": True},
    }
    if redis_url:
        if controls:
            variants[PING] = {"rate_limits": True}
        variants["redis"] = {"rate_limits": True, "redis_url": redis_url}
        if controls:
            variants[WAITED] = {"rate_limits": True, "redis_url": redis_url}
    async with contextlib.AsyncExitStack() as stack:
        sides: dict[str, Side] = {}
        for name, options in variants.items():
            data, url = await stack.enter_async_context(fresh_database(False))
            settings = make_settings(data, database_url=url, **options)
            h = await stack.enter_async_context(running_app(settings, clock))
            provider = h.app.state.provider
            shipped = provider.guard
            provider.guard = guard_for(name, settings, clock, prefix, redis_url or REDIS_URL)
            await shipped.close()
            if name == NEITHER:
                async with provider.store.engine.begin() as conn:
                    for index in INDEXES:
                        await conn.execute(text(f"DROP INDEX {index}"))
            sides[name] = Side(h, ips)
            stack.push_async_callback(sides[name].close)
        names = list(sides)
        for i in range(history):  # not timed: a log and wallet histories of some size, as in production
            for name in names:
                await sides[name].sign_in(wallets[i % WALLETS], removed=name == NEITHER)
            clock.advance(STEP)
        clock.advance(2 * 86400)  # no account is new any more
        for i in range(pairs + WARM_UP):
            wallet = wallets[i % WALLETS]
            for name in names[i % len(names) :] + names[: i % len(names)]:
                wall, cpu = await sides[name].sign_in(wallet, removed=name == NEITHER)
                if i >= WARM_UP:
                    timings.add(name, wall, cpu)
            clock.advance(STEP)
    return timings


async def limiter_round(
    backend: LimiterBackend, store: CounterStore, clock: FakeClock, iterations: int
) -> dict[str, float]:
    """Seconds per sign-in spent in each call; ``clock`` moves on from round to round."""
    limiter = RateLimiter(backend, DEFAULT_LIMITS, clock)
    detector = AnomalyDetector(store, clock)
    run = uuid.uuid4().int % 200  # a fresh range of IPs each round
    spent = dict.fromkeys(CALLS, 0.0)
    timer = time.perf_counter
    for i in range(iterations):
        ip = f"10.{run}.{i // 250}.{i % 250}"
        address = f"0x{run:08x}{i:032x}"
        t0 = timer()
        await limiter.check("nonce", ip=ip, client_id="portcullis-demo")
        t1 = timer()
        await limiter.check("verify", ip=ip, address=address, client_id="portcullis-demo")
        t2 = timer()
        await limiter.redeem_nonce(ip=ip)
        t3 = timer()
        await detector.locked(ip=ip, address=address)
        t4 = timer()
        for name, took in zip(CALLS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            spent[name] += took
        clock.advance(0.01)
    return {name: total / iterations for name, total in spent.items()}


async def calls(iterations: int, prefix: str, redis_url: str | None) -> dict[str, dict[str, float]]:
    contenders: dict[str, tuple[Any, Any]] = {"memory": (MemoryBackend(), MemoryCounterStore())}
    if redis_url:
        contenders["redis"] = (
            RedisBackend(redis_url, MemoryBackend(), prefix=prefix + "rl:"),
            RedisCounterStore(redis_url, prefix=prefix + "anomaly:"),
        )
    costs = {}
    for name, (backend, store) in contenders.items():
        clock = FakeClock()
        await limiter_round(backend, store, clock, 200)  # warm-up: connections, scripts
        costs[name] = await limiter_round(backend, store, clock, iterations)
        await backend.close()
        await store.close()
    return costs


async def measure(
    pairs: int, history: int, iterations: int, rtt_ms: float, controls: bool
) -> tuple[Timings, dict[str, dict[str, float]]]:
    prefix = f"portcullis-bench:{uuid.uuid4().hex}:"
    probe = RedisLink.from_url(REDIS_URL)
    redis = await probe.ping()
    async with contextlib.AsyncExitStack() as stack:
        url = None
        if redis:
            url = await stack.enter_async_context(delayed(rtt_ms)) if rtt_ms > 0 else REDIS_URL
        try:
            timings = await live(pairs, history, prefix, url, controls)
            return timings, await calls(iterations, prefix, url)
        finally:
            if redis:
                await probe.delete_matching(prefix + "*")
            await probe.close()
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def delayed(rtt_ms: float) -> AsyncIterator[str]:
    """The Redis URL through bench/delay_relay.py, adding ``rtt_ms`` to every round trip."""
    relay = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("delay_relay.py")),
        "127.0.0.1",
        "6379",
        str(rtt_ms / 2),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert relay.stdout is not None
        port = int(await relay.stdout.readline())
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        relay.kill()
        await relay.wait()


def added(timings: Timings, name: str, base_name: str, what: str) -> None:
    values, bases = timings.wall[name], timings.wall[base_name]
    base, cpu_base = statistics.median(bases), statistics.median(timings.cpu[base_name])
    diff = statistics.median(values) - base
    paired = statistics.median(a - b for a, b in zip(values, bases, strict=True))
    cpu_paired = statistics.median(
        a - b for a, b in zip(timings.cpu[name], timings.cpu[base_name], strict=True)
    )
    verdict = "PASS" if max(diff, paired) / base < TARGET else "FAIL"
    print(
        f"{what} ({name} vs {base_name}): {diff * 1e6:.1f} us = {diff / base * 100:.1f} % (difference of "
        f"medians), {paired * 1e6:.1f} us = {paired / base * 100:.1f} % (median of round differences); "
        f"CPU {cpu_paired * 1e6:.1f} us = {cpu_paired / cpu_base * 100:.1f} %; "
        f"< {TARGET * 100:.0f} %: {verdict}"
    )


def report(timings: Timings) -> None:
    print(f"{len(timings.wall[WITHOUT])} rounds, one sign-in on each app (SQLite):")
    print(f"{'':<13} {'median us':>10} {'mean us':>10} {'CPU median us':>14}")
    limited = [name for name in ("memory", PING, "redis", WAITED) if name in timings.wall]
    for name in (NEITHER, WITHOUT, *limited):
        values = timings.wall[name]
        print(
            f"{name:<13} {statistics.median(values) * 1e6:>10.1f} {statistics.fmean(values) * 1e6:>10.1f} "
            f"{statistics.median(timings.cpu[name]) * 1e6:>14.1f}"
        )
    for name in limited:
        added(timings, name, WITHOUT, "added by the limiter")
    added(timings, WITHOUT, NEITHER, "added by the risk engine")
    for name in limited:
        added(timings, name, NEITHER, "added by both")
    if PING in timings.wall:
        added(timings, "redis", PING, "the Redis guard beyond one bare round trip per request")
        added(timings, WAITED, "redis", "waiting for Redis before the work, instead of beside it")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300, help="timed rounds (one sign-in per app each)")
    parser.add_argument("--history", type=int, default=400, help="untimed sign-ins per app before")
    parser.add_argument("--iterations", type=int, default=2000, help="sign-ins' worth of limiter calls")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument(
        "--controls",
        action="store_true",
        help="add the memory+ping and redis-waited apps (two more apps in the process: noisier figures)",
    )
    parser.add_argument(
        "--redis-rtt-ms",
        type=float,
        default=0.0,
        help="reach Redis through bench/delay_relay.py, adding this much to each round trip (Redis on "
        "another host); 0: directly",
    )
    args = parser.parse_args()
    if args.loop == "uvloop":  # what `portcullis serve` runs on (uvicorn[standard] picks uvloop)
        import uvloop

        uvloop.install()
    print(f"machine: {machine_note()}, load average {os.getloadavg()[0]:.1f}, event loop: {args.loop}")
    print(f"Redis client: redis-py asyncio, reply parser {'hiredis' if HIREDIS_AVAILABLE else 'pure Python'}")
    if args.redis_rtt_ms:
        print(f"Redis reached through a relay adding {args.redis_rtt_ms} ms to each round trip")
    timings, costs = asyncio.run(
        measure(args.pairs, args.history, args.iterations, args.redis_rtt_ms, args.controls)
    )
    if "redis" not in timings.wall:
        print(f"Redis at {REDIS_URL} does not answer: Redis figures skipped")
    report(timings)
    print("where it goes, us per call (each call timed alone):")
    print(f"{'':<12}" + "".join(f"{c:>17}" for c in CALLS) + f"{'sum':>10}")
    for name, per_call in costs.items():
        total = sum(per_call.values())
        print(f"{name:<12}" + "".join(f"{per_call[c] * 1e6:>17.1f}" for c in CALLS) + f"{total * 1e6:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
