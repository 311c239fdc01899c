"""Per-process limiter state: GCRA arrival times in a dict, bounded in size.

No method awaits anything, so under asyncio each call (check and update of every key it names) runs
without interleaving: the atomicity the Redis backend gets from a Lua script.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from app.risk.gcra import MICROS, Limit, Verdict, gcra, to_micros

SWEEP_EVERY_US = 10 * MICROS


class MemoryBackend:
    """Budgets of this process only. ``max_keys`` bounds memory: beyond it, refilled keys go first, then
    the least recently used ones (a key that keeps being refused counts as used, so it stays)."""

    def __init__(self, *, max_keys: int = 200_000) -> None:
        self._tats: dict[str, int] = {}
        self._max_keys = max_keys
        self._next_sweep = 0

    async def hit(self, key: str, limit: Limit, now: float, cost: int = 1) -> Verdict:
        return self.charge([(key, limit)], to_micros(now), cost)[0]

    async def hit_many(self, items: Sequence[tuple[str, Limit]], now: float, cost: int = 1) -> list[Verdict]:
        return self.charge(items, to_micros(now), cost)

    async def refund(self, key: str, limit: Limit, now: float, cost: int = 1) -> None:
        self.charge([(key, limit)], to_micros(now), -cost)

    def charge(self, items: Sequence[tuple[str, Limit]], now_us: int, cost: int = 1) -> list[Verdict]:
        """All or nothing: the keys are charged only when every one of them allows the request."""
        steps = [gcra(self._tats.get(key), now_us, limit, cost) for key, limit in items]
        if all(step.verdict.allowed for step in steps):
            for (key, _), step in zip(items, steps, strict=True):
                self._store(key, step.new_tat, now_us)
        else:
            for key, _ in items:  # refused keys are busy keys: move them away from eviction
                if (tat := self._tats.pop(key, None)) is not None:
                    self._tats[key] = tat
        return [step.verdict for step in steps]

    async def reset(self, key_prefix: str) -> None:
        for key in [k for k in self._tats if k.startswith(key_prefix)]:
            del self._tats[key]

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._tats)

    def _store(self, key: str, tat: int | None, now_us: int) -> None:
        self._tats.pop(key, None)
        if tat is not None and tat > now_us:
            self._tats[key] = tat  # re-inserted last: dict order is least recently charged first
        if len(self._tats) > self._max_keys or now_us >= self._next_sweep:
            self._sweep(now_us)

    def _sweep(self, now_us: int) -> None:
        self._next_sweep = now_us + SWEEP_EVERY_US
        self._tats = {k: t for k, t in self._tats.items() if t > now_us}
        excess = len(self._tats) - self._max_keys
        if excess > 0:
            # Evict a tenth more than needed so the next full sweep is max_keys / 10 charges away.
            for key in list(itertools.islice(self._tats, excess + self._max_keys // 10)):
                del self._tats[key]
