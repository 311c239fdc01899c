"""The guard sends the lock lookup and the budget check together; a locked IP is turned away with the
lock's Retry-After and its request is paid back, so a lock keeps it from draining shared budgets."""

from __future__ import annotations

import pytest

from app.risk.anomaly import AnomalyDetector
from app.risk.counters import MemoryCounterStore
from app.risk.errors import RateLimited
from app.risk.gcra import Limit
from app.risk.guard import Guard
from app.risk.limits import RateLimiter
from app.risk.memory import MemoryBackend
from tests.conftest import FakeClock

# A tiny global budget, so that a single charge left unpaid would show.
LIMITS = {"verify:global": Limit("verify:global", 2, 60.0, 2)}


def guard(clock: FakeClock, *, remote: bool) -> Guard:
    backend = MemoryBackend()
    detector = AnomalyDetector(MemoryCounterStore(), clock, ip_threshold=3.0, cooldown=60.0)
    return Guard(RateLimiter(backend, LIMITS, clock), detector, backend, clock, remote=remote)


@pytest.mark.parametrize("remote", [False, True], ids=["in-process", "lookup-and-check-together"])
async def test_a_locked_ip_spends_nothing_of_the_shared_budget(clock: FakeClock, remote: bool) -> None:
    g = guard(clock, remote=remote)
    for _ in range(5):
        await g.failed(ip="203.0.113.9")
    assert await g.detector.locked_until(ip="203.0.113.9", address=None) is not None
    for _ in range(10):
        with pytest.raises(RateLimited) as refused:
            await g.admit("verify", ip="203.0.113.9")
        assert "failed attempts" in refused.value.description
        assert refused.value.retry_after > 1  # the lock's wait, not the budget's
    # the shared budget is whole: another IP still gets its two requests, then the third is refused
    await g.admit("verify", ip="198.51.100.7")
    await g.admit("verify", ip="198.51.100.7")
    with pytest.raises(RateLimited) as exhausted:
        await g.admit("verify", ip="198.51.100.7")
    assert "too many requests" in exhausted.value.description
