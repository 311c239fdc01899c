"""AnomalyDetector: a failure spike locks the address or IP, the lock ends by time or by an admin, on the
in-process store and on the machine's Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from app.risk.anomaly import AnomalyDetector, LockEvent
from app.risk.counters import CounterStore, MemoryCounterStore, decayed
from app.risk.redis_backend import RedisCounterStore
from tests.conftest import FakeClock
from tests.risk.conftest import Relay, closed_port, redis_namespace

ALICE = "0x" + "a1" * 20
EVE_IP = "198.51.100.66"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CounterStore]:
    if request.param == "memory":
        yield MemoryCounterStore()
        return
    async with redis_namespace() as (url, prefix):
        redis = RedisCounterStore(url, prefix=prefix)
        yield redis
        await redis.close()


def detector(store: CounterStore, clock: FakeClock, **options: float | None) -> AnomalyDetector:
    settings: dict[str, float | None] = {
        "half_life": 60.0,
        "threshold": 5.0,
        "cooldown": 600.0,
        "ip_threshold": 8.0,
        "global_threshold": None,
    }
    settings.update(options)
    return AnomalyDetector(store, clock, **settings)  # type: ignore[arg-type]


async def test_spike_locks_then_cooldown_unlocks(store: CounterStore, clock: FakeClock) -> None:
    d = detector(store, clock)
    events: list[LockEvent] = []
    for _ in range(4):
        events += await d.failure(ip=f"203.0.113.{len(events)}", address=ALICE)
    assert events == [] and not await d.locked(ip=None, address=ALICE)
    (event,) = await d.failure(ip="203.0.113.9", address=ALICE)  # the fifth failure in a burst
    assert event.what == "address" and event.key == ALICE and event.score == pytest.approx(5.0, rel=1e-6)
    assert event.until == clock.now() + timedelta(seconds=600)
    assert await d.locked(ip=None, address=ALICE)
    assert await d.locked(ip="192.0.2.1", address="0x" + ALICE[2:].upper())  # any IP, any spelling
    assert await d.locked_until(ip=None, address=ALICE) == event.until
    # further failures during the lock start no new lock (one audit event per lock)
    assert await d.failure(ip="203.0.113.10", address=ALICE) == ()
    clock.advance(599)
    assert await d.locked(ip=None, address=ALICE)
    clock.advance(1)
    assert not await d.locked(ip=None, address=ALICE)
    # by now the counter has decayed (ten half-lives): one more failure does not lock again
    assert await d.failure(ip="203.0.113.11", address=ALICE) == ()


async def test_ip_spike_locks_the_ip_for_every_address(store: CounterStore, clock: FakeClock) -> None:
    d = detector(store, clock)
    events: list[LockEvent] = []
    for i in range(8):
        events += await d.failure(ip=EVE_IP, address=f"0x{i:040x}")
    assert [(e.what, e.key) for e in events] == [("ip", EVE_IP)]
    assert await d.locked(ip=EVE_IP, address=None)
    assert await d.locked(ip=EVE_IP, address=ALICE)
    assert not await d.locked(ip="198.51.100.67", address=ALICE)


async def test_ipv6_locks_cover_the_slash_64(store: CounterStore, clock: FakeClock) -> None:
    d = detector(store, clock)
    events: list[LockEvent] = []
    for i in range(8):
        events += await d.failure(ip=f"2001:db8:5:6::{i + 1:x}", address=None)
    assert [(e.what, e.key) for e in events] == [("ip", "2001:db8:5:6::/64")]
    assert await d.locked(ip="2001:db8:5:6:abcd::1", address=None)
    await d.unlock(ip=events[0].key)  # the admin passes the key the audit event named
    assert not await d.locked(ip="2001:db8:5:6::1", address=None)


async def test_both_locks_start_on_the_same_failure(store: CounterStore, clock: FakeClock) -> None:
    d = detector(store, clock, ip_threshold=5.0)
    events: list[LockEvent] = []
    for _ in range(5):
        events += await d.failure(ip=EVE_IP, address=ALICE)
    assert sorted(e.what for e in events) == ["address", "ip"]


async def test_slow_failures_never_lock(store: CounterStore, clock: FakeClock) -> None:
    """A user mistyping now and then: one failure a minute settles at 1 / (1 - 2**-1) = 2 < 5."""
    d = detector(store, clock)
    for _ in range(120):
        assert await d.failure(ip="203.0.113.5", address=ALICE) == ()
        clock.advance(60)
    assert not await d.locked(ip="203.0.113.5", address=ALICE)


async def test_admin_unlock(store: CounterStore, clock: FakeClock) -> None:
    d = detector(store, clock, ip_threshold=5.0)
    for _ in range(5):
        await d.failure(ip=EVE_IP, address=ALICE)
    await d.unlock(address=ALICE)
    assert not await d.locked(ip=None, address=ALICE)
    assert await d.locked(ip=EVE_IP, address=None)  # only what the admin named
    # unlocking also forgets the count: the next failure does not relock at once
    assert await d.failure(ip=None, address=ALICE) == ()
    await d.unlock(ip=EVE_IP)
    assert not await d.locked(ip=EVE_IP, address=ALICE)
    await d.unlock()  # naming nothing is a no-op


async def test_global_spike_tightens_per_key_thresholds(store: CounterStore, clock: FakeClock) -> None:
    d = detector(store, clock, global_threshold=50.0, alert_factor=0.5)
    for i in range(50):  # a campaign: fifty addresses from fifty IPs, none near its own threshold
        assert await d.failure(ip=f"198.18.0.{i}", address=f"0x{i:040x}") == ()
    assert await d.global_score() == pytest.approx(50.0, rel=1e-6)
    events: list[LockEvent] = []
    for _ in range(3):  # under alert, three failures (5 x 0.5 rounded up) lock an address
        events += await d.failure(ip=None, address=ALICE)
    assert [e.what for e in events] == ["address"]


def test_decay_halves_per_half_life() -> None:
    assert decayed(8.0, 100.0, 100.0, 30.0) == 8.0
    assert decayed(8.0, 100.0, 130.0, 30.0) == pytest.approx(4.0)
    assert decayed(8.0, 100.0, 190.0, 30.0) == pytest.approx(1.0)
    assert decayed(8.0, 100.0, 50.0, 30.0) == 8.0  # a clock stepping back does not inflate it


async def test_redis_down_falls_back_stricter_and_keeps_its_locks(relay: Relay, prefix: str) -> None:
    clock = FakeClock()
    store = RedisCounterStore(relay.url, MemoryCounterStore(), 0.25, prefix=prefix)
    d = detector(store, clock, threshold=8.0)
    try:
        await d.failure(ip=None, address=ALICE)
        assert await store.healthy()
        await relay.stop()
        assert not await store.healthy()
        # per process, each failure weighs 1 / 0.25: two failures reach the threshold of 8
        events = await d.failure(ip=None, address=ALICE) + await d.failure(ip=None, address=ALICE)
        assert [e.what for e in events] == ["address"]
        assert await d.locked(ip=None, address=ALICE)
        await relay.start()
        clock.advance(3)  # past the breaker's retry period: Redis is asked again
        assert await d.locked(ip=None, address=ALICE)  # the lock taken during the outage holds
    finally:
        await store.close()


async def test_unreachable_redis_is_not_healthy_and_still_locks() -> None:
    clock = FakeClock()
    store = RedisCounterStore(f"redis://127.0.0.1:{closed_port()}/0")
    d = detector(store, clock)
    try:
        assert not await store.healthy()
        events = [e for _ in range(2) for e in await d.failure(ip=None, address=ALICE)]
        assert [e.what for e in events] == ["address"]
    finally:
        await store.close()


async def test_ends_and_marks(store: CounterStore) -> None:
    # what app.risk.client_guard reads in one call: each key's end, a mark set whatever was there
    assert await store.ends(["a", "b"], 100.0) == [None, None]
    assert await store.lock("a", 100.0, 160.0)
    await store.mark("b", 100.0, 130.0)
    await store.mark("b", 100.0, 120.0)  # a mark is replaced, not kept as a lock would be
    assert await store.ends(["a", "b", "c"], 110.0) == [160.0, 120.0, None]
    assert await store.ends(["a", "b"], 125.0) == [160.0, None]


async def test_ends_and_marks_fall_back_while_redis_is_down() -> None:
    redis = RedisCounterStore(f"redis://127.0.0.1:{closed_port()}/0", timeout=0.2)
    try:
        await redis.mark("trusted", 100.0, 200.0)  # kept by this process: never lost, never fails open
        assert await redis.ends(["trusted", "other"], 150.0) == [200.0, None]
    finally:
        await redis.close()
