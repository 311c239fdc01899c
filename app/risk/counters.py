"""Exponentially decaying failure counters and time-boxed locks: the state behind anomaly detection.

A counter is an exponentially weighted moving sum: each event adds 1 and the total halves every
``half_life`` seconds, so ``score = sum(2 ** -(age / half_life))`` over past events. A steady rate of
``r`` events per second settles at ``r * half_life / ln 2``; a burst of ``n`` events scores about ``n``.
The whole state of a counter is (score, time of last update).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

FORGET_BELOW = 0.01  # a counter this small is as good as zero: its key may be dropped


def decayed(score: float, since: float, now: float, half_life: float) -> float:
    """``score`` as it stood at ``since``, decayed to ``now`` (time never runs backwards here)."""
    elapsed = max(0.0, now - since)
    return float(score * 2.0 ** (-elapsed / half_life))


class CounterStore(Protocol):
    async def bump(self, key: str, now: float, half_life: float) -> float:
        """Add one event to ``key`` and return its decayed score including it (atomically)."""
        ...

    async def peek(self, key: str, now: float, half_life: float) -> float:
        """The decayed score of ``key`` at ``now``, without adding to it."""
        ...

    async def lock(self, key: str, now: float, until: float) -> bool:
        """Lock ``key`` until ``until``; False (and no change) when it is already locked past ``now``."""
        ...

    async def locked_until(self, keys: Sequence[str], now: float) -> float | None:
        """The latest end of the locks among ``keys`` still in force at ``now``; None when none is."""
        ...

    async def ends(self, keys: Sequence[str], now: float) -> list[float | None]:
        """For each of ``keys``, the end of its lock (or mark) if still in force at ``now``, else None."""
        ...

    async def mark(self, key: str, now: float, until: float) -> None:
        """Set ``key`` in force until ``until``, whatever it held (a lock only ever starts with ``lock``)."""
        ...

    async def clear(self, keys: Sequence[str]) -> None:
        """Drop the counters and locks named by ``keys``."""
        ...

    async def healthy(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryCounterStore:
    """Counters and locks of this process only; every method runs without awaiting (asyncio-atomic)."""

    def __init__(self, *, max_keys: int = 200_000, amount: float = 1.0) -> None:
        self._scores: dict[str, tuple[float, float]] = {}
        self._locks: dict[str, float] = {}
        self._max_keys = max_keys
        self._amount = amount  # what one event adds; RedisCounterStore's fallback adds more (stricter)

    async def bump(self, key: str, now: float, half_life: float) -> float:
        return self.add(key, now, half_life, self._amount)

    def add(self, key: str, now: float, half_life: float, amount: float) -> float:
        score, since = self._scores.pop(key, (0.0, now))
        score = decayed(score, since, now, half_life) + amount
        self._scores[key] = (score, now)  # re-inserted last: dict order is least recently bumped first
        if len(self._scores) > self._max_keys:
            self._sweep(now, half_life)
        return score

    async def peek(self, key: str, now: float, half_life: float) -> float:
        score, since = self._scores.get(key, (0.0, now))
        return decayed(score, since, now, half_life)

    async def lock(self, key: str, now: float, until: float) -> bool:
        if self._locks.get(key, now) > now:
            return False
        self._locks[key] = until
        if len(self._locks) > self._max_keys:
            self._locks = {k: u for k, u in self._locks.items() if u > now}
        return True

    async def locked_until(self, keys: Sequence[str], now: float) -> float | None:
        return max((u for u in await self.ends(keys, now) if u is not None), default=None)

    async def ends(self, keys: Sequence[str], now: float) -> list[float | None]:
        return [u if u is not None and u > now else None for u in (self._locks.get(k) for k in keys)]

    async def mark(self, key: str, now: float, until: float) -> None:
        self._locks[key] = until
        if len(self._locks) > self._max_keys:
            self._locks = {k: u for k, u in self._locks.items() if u > now}

    async def clear(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._scores.pop(key, None)
            self._locks.pop(key, None)

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    def _sweep(self, now: float, half_life: float) -> None:
        self._scores = {
            k: (s, t) for k, (s, t) in self._scores.items() if decayed(s, t, now, half_life) >= FORGET_BELOW
        }
        excess = len(self._scores) - self._max_keys
        if excess > 0:
            for key in list(itertools.islice(self._scores, excess + self._max_keys // 10)):
                del self._scores[key]
