"""The Generic Cell Rate Algorithm (ITU-T I.371 annex A, virtual scheduling): pure limiter arithmetic.

A key's whole state is one number, its theoretical arrival time (TAT). Each request of cost ``c`` moves
the TAT ``c`` emission intervals (``per_seconds / rate``) into the future; the request is allowed while
the TAT stays within ``burst`` intervals of now. So a fresh key takes ``burst`` requests at once and
then ``rate`` per ``per_seconds``. Times are integer microseconds so the Python and the Redis Lua
copies of this arithmetic agree exactly (doubles hold integers exactly up to 2**53 us, year 2255).
A negative cost pays requests back: the TAT moves back, never before now.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

MICROS = 1_000_000


@dataclass(frozen=True)
class Limit:
    """``rate`` requests per ``per_seconds`` sustained, up to ``burst`` at once (verify:ip: 30/60 s, 10)."""

    name: str
    rate: int
    per_seconds: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate < 1 or self.burst < 1 or not self.per_seconds > 0:
            raise ValueError(f"limit {self.name!r}: rate and burst must be >= 1 and per_seconds > 0")

    @cached_property
    def interval_us(self) -> int:
        """The emission interval: the time one request's worth of budget takes to refill."""
        return max(1, round(self.per_seconds * MICROS / self.rate))

    @cached_property
    def tolerance_us(self) -> int:
        return self.interval_us * self.burst

    @cached_property
    def lua_params(self) -> str:
        """The limit as the Redis script reads it: ``interval_us,tolerance_us``."""
        return f"{self.interval_us},{self.tolerance_us}"

    def scaled(self, factor: float) -> Limit:
        """The same limit with rate and burst multiplied by ``factor`` <= 1, never below one request."""
        return Limit(
            self.name,
            max(1, min(self.rate, int(self.rate * factor))),
            self.per_seconds,
            max(1, min(self.burst, int(self.burst * factor))),
        )


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: float  # seconds until the same request would be allowed; 0 when allowed
    remaining: int  # requests of cost 1 still allowed right now (after this one)


@dataclass(frozen=True)
class Step:
    verdict: Verdict
    new_tat: int | None  # the TAT to store when the request goes through; None: leave the key alone


def gcra(tat: int | None, now: int, limit: Limit, cost: int = 1) -> Step:
    """One request of ``cost`` against a key whose stored TAT is ``tat`` (None: never seen), at ``now`` us."""
    interval = limit.interval_us
    base = now if tat is None or tat < now else tat
    if cost < 0:
        new_tat = max(now, base + cost * interval)
        return Step(Verdict(True, 0.0, (now + limit.tolerance_us - new_tat) // interval), new_tat)
    if cost > limit.burst:
        raise ValueError(f"cost {cost} exceeds the burst of {limit.name!r}: it could never be allowed")
    new_tat = base + cost * interval
    allow_at = new_tat - limit.tolerance_us
    if allow_at > now:
        return Step(Verdict(False, (allow_at - now) / MICROS, 0), None)
    return Step(Verdict(True, 0.0, (now - allow_at) // interval), new_tat)


def to_micros(seconds: float) -> int:
    return round(seconds * MICROS)
