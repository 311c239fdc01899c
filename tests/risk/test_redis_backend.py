"""RedisBackend against the machine's Redis: same answers as the memory backend, one budget shared by
two limiters, and Redis failing mid-test (fallback stricter, healthy() False, never unlimited)."""

from __future__ import annotations

import asyncio
import random

import pytest

from app.risk.errors import RateLimited
from app.risk.gcra import Limit
from app.risk.limits import OUTSTANDING_NONCES, RateLimiter
from app.risk.memory import MemoryBackend
from app.risk.redis_backend import RedisBackend
from tests.conftest import FakeClock
from tests.risk.conftest import Relay, closed_port

T0 = 1_700_000_000.0
LIMIT = Limit("verify:ip", rate=8, per_seconds=60, burst=8)
LIMITS = {
    limit.name: limit
    for limit in (
        Limit("verify:ip", rate=30, per_seconds=60, burst=10),
        Limit("verify:address", rate=60, per_seconds=60, burst=20),
        Limit("verify:global", rate=600, per_seconds=60, burst=100),
    )
}


async def test_same_verdicts_as_the_memory_backend(redis_url: str, prefix: str) -> None:
    rng = random.Random(4361)
    limits = [LIMIT, Limit("a:ip", 3, 1, 2), Limit("b:global", 1000, 7, 13)]
    redis = RedisBackend(redis_url, MemoryBackend(), prefix=prefix)
    memory = MemoryBackend()
    now = T0
    try:
        for step in range(400):
            now += rng.choice([0, 0, 0, 0.001, 0.37, 1.5, 7.5, 40])
            chosen = rng.sample(limits, rng.randint(1, 3))
            items = [(f"{limit.name}:{rng.randint(0, 2)}", limit) for limit in chosen]
            cost = rng.choice([1, 1, 1, 2, -1])
            assert await redis.hit_many(items, now, cost) == await memory.hit_many(items, now, cost), step
    finally:
        await redis.close()


async def test_burst_refill_and_reset(redis_url: str, prefix: str) -> None:
    backend = RedisBackend(redis_url, MemoryBackend(), prefix=prefix)
    try:
        assert await backend.healthy()
        verdicts = [await backend.hit("k", LIMIT, T0) for _ in range(10)]
        assert [v.allowed for v in verdicts] == [True] * 8 + [False] * 2
        assert verdicts[-1].retry_after == pytest.approx(7.5)
        assert (await backend.hit("k", LIMIT, T0 + 7.5)).allowed
        await backend.reset("k")
        assert (await backend.hit("k", LIMIT, T0 + 7.5)).remaining == 7
    finally:
        await backend.close()


async def test_two_limiters_share_one_budget(redis_url: str, prefix: str, clock: FakeClock) -> None:
    """Two replicas (separate connection pools, same Redis): ten per IP in all, not ten each."""
    replicas = [
        RateLimiter(RedisBackend(redis_url, MemoryBackend(), prefix=prefix), LIMITS, clock) for _ in "ab"
    ]
    try:
        granted = 0
        for i in range(30):
            try:
                await replicas[i % 2].check("verify", ip="198.51.100.9")
                granted += 1
            except RateLimited as exc:
                assert exc.retry_after == pytest.approx(2.0)
        assert granted == 10
        # concurrent checks from both replicas: the Lua script is atomic, exactly the burst gets through
        results = await asyncio.gather(
            *(replicas[i % 2].check("verify", ip="198.51.100.10") for i in range(60)), return_exceptions=True
        )
        assert sum(not isinstance(r, BaseException) for r in results) == 10
        # a refusal on one replica is a refusal on the other once time has not moved
        with pytest.raises(RateLimited):
            await replicas[0].check("verify", ip="198.51.100.10")
        clock.advance(2)
        await replicas[1].check("verify", ip="198.51.100.10")
        with pytest.raises(RateLimited):
            await replicas[0].check("verify", ip="198.51.100.10")
    finally:
        for replica in replicas:
            await replica.backend.close()


async def test_redis_down_mid_test_falls_back_stricter(relay: Relay, prefix: str) -> None:
    backend = RedisBackend(relay.url, MemoryBackend(), 0.25, prefix=prefix, retry_seconds=2.0)
    try:
        for _ in range(3):
            assert (await backend.hit("ip:1", LIMIT, T0)).allowed
        assert await backend.healthy()

        await relay.stop()  # Redis goes away mid-test
        assert not await backend.healthy()
        verdicts = [await backend.hit("ip:1", LIMIT, T0 + 0.001) for _ in range(200)]
        # the per-process fallback enforces a quarter of the budget (burst 8 -> 2): stricter, not unlimited
        assert sum(v.allowed for v in verdicts) == 2
        assert verdicts[-1].retry_after == pytest.approx(30.0)  # fallback rate: 2 per 60 s
        assert not await backend.healthy()

        await relay.start()  # Redis is back; the breaker lets a probe through after retry_seconds
        assert await backend.healthy()
        verdict = await backend.hit("ip:1", LIMIT, T0 + 2.1)
        # answered by Redis again, where three of eight were spent before the outage
        assert verdict.allowed and verdict.remaining == 4
    finally:
        await backend.close()


async def test_redis_never_reachable() -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    limiter = RateLimiter(RedisBackend(url, MemoryBackend()), LIMITS, FakeClock())
    try:
        assert not await limiter.healthy()
        granted = 0
        for _ in range(50):
            try:
                await limiter.check("verify", ip="198.51.100.1", address="0x" + "ab" * 20)
                granted += 1
            except RateLimited:
                pass
        assert granted == LIMITS["verify:ip"].burst // 4
    finally:
        await limiter.backend.close()


async def test_a_dead_redis_costs_one_timeout_per_retry_period_not_per_request() -> None:
    """A refused connection is instant; the breaker keeps even that off the request path meanwhile."""
    backend = RedisBackend(f"redis://127.0.0.1:{closed_port()}/0", MemoryBackend())
    loop = asyncio.get_running_loop()
    try:
        start = loop.time()
        for i in range(200):
            await backend.hit(f"k{i}", LIMIT, T0)
        assert loop.time() - start < 1.0
    finally:
        await backend.close()


def test_fallback_factor_must_be_stricter() -> None:
    with pytest.raises(ValueError, match="never looser"):
        RedisBackend("redis://127.0.0.1:6379/0", MemoryBackend(), fallback_factor=1.5)


async def test_redeem_through_redis_is_seen_by_the_next_check(
    redis_url: str, prefix: str, clock: FakeClock
) -> None:
    limits = {
        "nonce:ip": Limit("nonce:ip", rate=120, per_seconds=60, burst=30),
        OUTSTANDING_NONCES: Limit(OUTSTANDING_NONCES, rate=6, per_seconds=600, burst=4),
    }
    limiter = RateLimiter(RedisBackend(redis_url, MemoryBackend(), prefix=prefix), limits, clock)
    try:
        await limiter.redeem_nonce(ip="198.51.100.1")  # no connection yet: sent and awaited
        for _ in range(4):
            await limiter.check("nonce", ip="198.51.100.1")
        with pytest.raises(RateLimited):
            await limiter.check("nonce", ip="198.51.100.1")
        for _ in range(2):
            await limiter.redeem_nonce(ip="198.51.100.1")  # sent without waiting for the reply
            await limiter.check("nonce", ip="198.51.100.1")  # ... and already applied
        with pytest.raises(RateLimited):
            await limiter.check("nonce", ip="198.51.100.1")
    finally:
        await limiter.backend.close()


async def test_a_stalled_redis_holds_concurrent_requests_for_one_timeout_only() -> None:
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    url = f"redis://127.0.0.1:{silent.sockets[0].getsockname()[1]}/0"
    backend = RedisBackend(url, MemoryBackend(), timeout=0.2)
    loop = asyncio.get_running_loop()
    try:
        start = loop.time()
        verdicts = await asyncio.gather(*(backend.hit("k", LIMIT, T0) for _ in range(100)))
        assert loop.time() - start < 1.0
        assert sum(v.allowed for v in verdicts) == 2  # the stricter fallback answered every one
        start = loop.time()
        await backend.hit("k", LIMIT, T0 + 0.5)  # breaker open: no new wait
        assert loop.time() - start < 0.05
    finally:
        await backend.close()
        silent.close()


async def test_a_check_with_nothing_to_charge(redis_url: str, prefix: str, clock: FakeClock) -> None:
    only_address = {"mfa:address": Limit("mfa:address", rate=1, per_seconds=60, burst=1)}
    limiter = RateLimiter(RedisBackend(redis_url, MemoryBackend(), prefix=prefix), only_address, clock)
    try:
        await limiter.check("mfa", ip="198.51.100.1")  # no address given: no key, nothing to refuse
        assert await limiter.backend.hit_many([], T0) == []
        await limiter.check("mfa", ip="198.51.100.1", address="0x" + "cd" * 20)
        with pytest.raises(RateLimited):
            await limiter.check("mfa", ip="198.51.100.1", address="0x" + "cd" * 20)
    finally:
        await limiter.backend.close()
