"""GCRA arithmetic (app.risk.gcra): burst, refill, Retry-After, pay-back, scaling. Pure: times are given."""

from __future__ import annotations

import pytest

from app.risk.gcra import MICROS, Limit, gcra

S = MICROS  # one second in the arithmetic's unit
T0 = 1_700_000_000 * S
LIMIT = Limit("verify:ip", rate=30, per_seconds=60, burst=10)  # one request per 2 s, 10 at once


def run(
    tat: int | None, now: int, limit: Limit = LIMIT, cost: int = 1
) -> tuple[bool, float, int, int | None]:
    step = gcra(tat, now, limit, cost)
    kept = tat if step.new_tat is None else step.new_tat
    return step.verdict.allowed, step.verdict.retry_after, step.verdict.remaining, kept


def test_a_fresh_key_takes_the_burst_at_once_then_refuses() -> None:
    tat: int | None = None
    remaining = []
    for _ in range(LIMIT.burst):
        allowed, retry, left, tat = run(tat, T0)
        assert allowed and retry == 0
        remaining.append(left)
    assert remaining == list(range(LIMIT.burst - 1, -1, -1))
    allowed, retry, left, after = run(tat, T0)
    assert (allowed, retry, left) == (False, 2.0, 0)
    assert after == tat  # a refusal spends nothing


def test_retry_after_is_exact_and_waiting_it_suffices() -> None:
    tat = T0 + LIMIT.tolerance_us  # exhausted at T0
    for waited, expected in [(0, 2.0), (0.5, 1.5), (1.999999, 0.000001)]:
        allowed, retry, _, _ = run(tat, T0 + round(waited * S))
        assert not allowed and retry == pytest.approx(expected, abs=1e-9)
    allowed, _, left, _ = run(tat, T0 + 2 * S)
    assert allowed and left == 0


def test_refill_is_one_request_per_interval_up_to_the_burst() -> None:
    tat = T0 + LIMIT.tolerance_us
    # after 7 s, three requests' worth has come back (one per 2 s), the fourth is 1 s away
    now = T0 + 7 * S
    granted = 0
    while (result := run(tat, now))[0]:
        granted, tat = granted + 1, result[3]
    assert granted == 3
    assert result[1] == pytest.approx(1.0)
    # a long idle period refills to the burst and no further
    assert run(tat, now + 3600 * S)[2] == LIMIT.burst - 1


def test_sustained_rate_matches_rate_per_period() -> None:
    limit = Limit("nonce:ip", rate=120, per_seconds=60, burst=30)
    tat: int | None = None
    allowed = 0
    # one request every 10 ms for 60 s: burst + rate get through
    for tick in range(6000):
        ok, _, _, tat = run(tat, T0 + tick * 10_000, limit)
        allowed += ok
    assert allowed == limit.burst + limit.rate - 1  # the 120th refill lands at t = 60 s, after the last tick


def test_cost_above_one_and_above_the_burst() -> None:
    allowed, _, left, _ = run(None, T0, cost=4)
    assert allowed and left == LIMIT.burst - 4
    with pytest.raises(ValueError, match="could never be allowed"):
        gcra(None, T0, LIMIT, LIMIT.burst + 1)


def test_negative_cost_pays_back_but_never_banks_budget() -> None:
    tat = T0 + LIMIT.tolerance_us  # exhausted
    allowed, _, left, tat = run(tat, T0, cost=-1)
    assert allowed and left == 1
    assert run(tat, T0)[0]
    # paying back a full budget changes nothing: the TAT never goes before now
    allowed, _, left, tat = run(None, T0, cost=-5)
    assert allowed and left == LIMIT.burst and tat == T0


def test_time_running_backwards_is_not_a_fresh_budget() -> None:
    tat = T0 + LIMIT.tolerance_us
    allowed, retry, _, _ = run(tat, T0 - 30 * S)
    assert not allowed and retry == pytest.approx(32.0)


def test_scaled_limits_are_stricter_and_never_zero() -> None:
    assert LIMIT.scaled(0.25) == Limit("verify:ip", rate=7, per_seconds=60, burst=2)
    tiny = Limit("register:address", rate=1, per_seconds=3600, burst=1)
    assert tiny.scaled(0.01) == tiny
    assert LIMIT.scaled(1.0) == LIMIT


@pytest.mark.parametrize(("rate", "per", "burst"), [(0, 60, 1), (1, 0, 1), (1, 60, 0), (1, -1, 1)])
def test_nonsense_limits_are_refused(rate: int, per: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        Limit("x:ip", rate=rate, per_seconds=per, burst=burst)
