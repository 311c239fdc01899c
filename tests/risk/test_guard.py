"""The guard in process and on Redis: a locked IP is turned away with the lock's Retry-After and spends
nothing of the shared budgets; with Redis the lookup and the charge are one script whose answer the
request's work may run ahead of (the gate), Redis's refusals are remembered until their Retry-After, and
a Redis that stops answering hands over to the stricter per-process limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.risk import guard as guard_module
from app.risk.anomaly import AnomalyDetector
from app.risk.counters import MemoryCounterStore
from app.risk.errors import RateLimited
from app.risk.gcra import Limit
from app.risk.guard import Guard, Shared
from app.risk.limits import RateLimiter
from app.risk.memory import MemoryBackend
from app.risk.redis_backend import RedisBackend, RedisCounterStore, RedisLink
from tests.conftest import FakeClock
from tests.risk.conftest import closed_port, redis_namespace

# A tiny global budget, so that a single charge left unpaid would show.
LIMITS = {"verify:global": Limit("verify:global", 2, 60.0, 2)}
LOCKED_IP = "203.0.113.9"


def memory_guard(clock: FakeClock) -> Guard:
    backend = MemoryBackend()
    detector = AnomalyDetector(MemoryCounterStore(), clock, ip_threshold=3.0, cooldown=60.0)
    return Guard(RateLimiter(backend, LIMITS, clock), detector, backend, clock)


def redis_guard(url: str, prefix: str, clock: FakeClock) -> Guard:
    link = RedisLink.from_url(url, retry_seconds=2.0)
    limits = RedisBackend(url, MemoryBackend(), prefix=prefix + "rl:", link=link)
    counters = RedisCounterStore(url, prefix=prefix + "anomaly:", link=link)
    detector = AnomalyDetector(counters, clock, ip_threshold=3.0, cooldown=60.0)
    return Guard(RateLimiter(limits, LIMITS, clock), detector, limits, clock, Shared(limits, counters))


@pytest.fixture(params=["in-process", "redis"])
async def guard(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Guard]:
    if request.param == "in-process":
        yield memory_guard(clock)
        return
    async with redis_namespace() as (url, prefix):
        g = redis_guard(url, prefix, clock)
        try:
            yield g
        finally:
            await g.close()


async def lock(g: Guard, ip: str) -> None:
    for _ in range(5):
        await g.failed(ip=ip)
    assert await g.detector.locked_until(ip=ip, address=None) is not None


async def test_a_locked_ip_spends_nothing_of_the_shared_budget(guard: Guard) -> None:
    await lock(guard, LOCKED_IP)
    for _ in range(10):
        with pytest.raises(RateLimited) as refused:
            await guard.admit("verify", ip=LOCKED_IP)
        assert "failed attempts" in refused.value.description
        assert refused.value.retry_after > 1  # the lock's wait, not the budget's
    # the shared budget is whole: another IP still gets its two requests, then the third is refused
    await guard.admit("verify", ip="198.51.100.7")
    await guard.admit("verify", ip="198.51.100.7")
    with pytest.raises(RateLimited) as exhausted:
        await guard.admit("verify", ip="198.51.100.7")
    assert "too many requests" in exhausted.value.description


async def test_a_refusal_outranks_what_the_work_raised_and_is_raised_even_unasked(guard: Guard) -> None:
    for _ in range(2):
        async with guard.admitted("verify", ip="198.51.100.8") as gate:
            await gate.wait()
    # the work fails on its own account, but the request was over budget: 429 it is
    with pytest.raises(RateLimited):
        async with guard.admitted("verify", ip="198.51.100.8"):
            raise ValueError("the signature does not match")
    # work that never awaited the gate still does not get its answer out
    with pytest.raises(RateLimited):
        async with guard.admitted("verify", ip="198.51.100.8"):
            pass


async def test_redis_refusals_are_remembered_until_their_retry_after(clock: FakeClock) -> None:
    async with redis_namespace() as (url, prefix):
        g = redis_guard(url, prefix, clock)
        try:
            await g.admit("verify", ip="198.51.100.9")
            await g.admit("verify", ip="198.51.100.9")
            with pytest.raises(RateLimited) as first:
                await g.admit("verify", ip="198.51.100.9")
            assert "refused before" not in (first.value.debug or "")
            await g.backend.reset("")  # Redis forgets the budget; this process still knows the refusal
            with pytest.raises(RateLimited) as again:
                await g.begin("verify", ip="198.51.100.9")  # refused at once, before Redis is asked
            assert "refused before" in (again.value.debug or "")
            assert again.value.retry_after <= first.value.retry_after
            clock.advance(first.value.retry_after)
            await g.admit("verify", ip="198.51.100.9")  # the remembered refusal ran out; Redis admits
        finally:
            await g.close()


async def test_a_lock_taken_while_redis_was_down_still_holds(clock: FakeClock) -> None:
    async with redis_namespace() as (url, prefix):
        g = redis_guard(url, prefix, clock)
        assert g.shared is not None
        try:
            now = clock.now().timestamp()
            (key,) = g.detector.lock_keys(ip=LOCKED_IP, address=None)
            await g.shared.counters.fallback.lock(key, now, now + 30)
            with pytest.raises(RateLimited) as refused:
                await g.admit("verify", ip=LOCKED_IP)
            assert refused.value.retry_after == 30
            await g.admit("verify", ip="198.51.100.10")  # and it cost the shared budget nothing
            await g.admit("verify", ip="198.51.100.10")
        finally:
            await g.close()


async def test_without_redis_the_stricter_per_process_limits_answer(clock: FakeClock) -> None:
    g = redis_guard(f"redis://127.0.0.1:{closed_port()}/0", "unused:", clock)
    try:
        await g.admit("verify", ip="198.51.100.11")  # the fallback's budget is a quarter: one request
        with pytest.raises(RateLimited):
            await g.admit("verify", ip="198.51.100.11")
        assert not await g.healthy()
    finally:
        await g.close()


async def test_remembered_refusals_are_bounded_newest_kept(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guard_module, "REFUSALS_KEPT", 4)
    per_ip = {"verify:ip": Limit("verify:ip", 1, 60.0, 1)}
    async with redis_namespace() as (url, prefix):
        g = redis_guard(url, prefix, clock)
        assert g.limiter is not None
        g.limiter = RateLimiter(g.backend, per_ip, clock)
        try:
            for i in range(7):
                ip = f"198.51.100.{20 + i}"
                await g.admit("verify", ip=ip)
                with pytest.raises(RateLimited):
                    await g.admit("verify", ip=ip)  # Redis refuses: remembered
                assert len(g._refused) <= 4
            with pytest.raises(RateLimited) as newest:
                await g.begin("verify", ip="198.51.100.26")
            assert "refused before" in (newest.value.debug or "")
        finally:
            await g.close()


async def test_with_limits_off_redis_still_answers_for_locks(clock: FakeClock) -> None:
    # PORTCULLIS_RATE_LIMITS=false with Redis: the script then charges nothing and only reads the lock.
    async with redis_namespace() as (url, prefix):
        g = redis_guard(url, prefix, clock)
        g.limiter = None
        try:
            for _ in range(5):
                await g.admit("verify", ip="198.51.100.30")  # no budget to run out
            await lock(g, LOCKED_IP)
            with pytest.raises(RateLimited) as refused:
                await g.admit("verify", ip=LOCKED_IP)
            assert "failed attempts" in refused.value.description
        finally:
            await g.close()
