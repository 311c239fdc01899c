"""MemoryBackend: all-or-nothing charges, reset, and bounded memory that never hands out free budget."""

from __future__ import annotations

from app.risk.gcra import Limit
from app.risk.memory import MemoryBackend

T0 = 1_700_000_000.0
A = Limit("verify:ip", rate=30, per_seconds=60, burst=3)
B = Limit("verify:global", rate=60, per_seconds=60, burst=5)


async def test_charges_all_keys_or_none() -> None:
    backend = MemoryBackend()
    for _ in range(3):
        assert all(v.allowed for v in await backend.hit_many([("a", A), ("g", B)], T0))
    verdicts = await backend.hit_many([("a", A), ("g", B)], T0)
    assert [v.allowed for v in verdicts] == [False, True]
    # the refused request did not spend the global budget: two left, as after three requests
    assert (await backend.hit("g", B, T0)).remaining == 1


async def test_single_hit_and_reset_by_prefix() -> None:
    backend = MemoryBackend()
    for _ in range(3):
        await backend.hit("verify:ip:1.2.3.4", A, T0)
    await backend.hit("nonce:ip:1.2.3.4", A, T0)
    assert not (await backend.hit("verify:ip:1.2.3.4", A, T0)).allowed
    await backend.reset("verify:")
    assert (await backend.hit("verify:ip:1.2.3.4", A, T0)).remaining == 2
    assert (await backend.hit("nonce:ip:1.2.3.4", A, T0)).remaining == 1
    assert await backend.healthy()


async def test_refilled_keys_are_forgotten() -> None:
    backend = MemoryBackend()
    for i in range(100):
        await backend.hit(f"k{i}", A, T0)
    assert len(backend) == 100
    await backend.hit("late", A, T0 + 60)  # past every key's arrival time and past the sweep period
    assert len(backend) == 1


async def test_size_is_bounded_and_busy_keys_stay_limited() -> None:
    backend = MemoryBackend(max_keys=1000)
    for _ in range(3):
        await backend.hit("attacker", A, T0)
    for i in range(5000):
        await backend.hit(f"spray{i}", A, T0 + 0.001)
        if i % 100 == 0:
            # the attacker keeps trying: refused, and too recent to be evicted by the spray
            assert not (await backend.hit("attacker", A, T0 + 0.001)).allowed
    assert len(backend) <= 1000
