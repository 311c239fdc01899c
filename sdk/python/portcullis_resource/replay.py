"""RFC 9449 section 11.1: DPoP proof ``jti`` values are single-use within the proof window.

A small protocol with two implementations: in memory (one process) and Redis (several replicas of a
backend share one store). ``first_use`` is atomic: of two concurrent calls with one key, one wins.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol


class ReplayStore(Protocol):
    async def first_use(self, key: str, ttl: float, now: float) -> bool:
        """True the first time ``key`` is seen within ``ttl`` seconds of ``now``; False for a replay."""
        ...


class MemoryReplayStore:
    """One process's store: a dict of key -> expiry, swept as it grows."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._seen: dict[str, float] = {}
        self._max = max_entries

    async def first_use(self, key: str, ttl: float, now: float) -> bool:
        held = self._seen.get(key)
        if held is not None and held > now:
            return False
        if len(self._seen) >= self._max:
            self._seen = {k: t for k, t in self._seen.items() if t > now}
            if len(self._seen) >= self._max:
                return False  # full of live entries: refuse rather than forget (fail closed)
        self._seen[key] = now + ttl
        return True


class RedisReplayStore:
    """Shared by replicas: ``SET key 1 NX PX ttl`` (atomic). ``client`` is a ``redis.asyncio.Redis``."""

    def __init__(self, client: Any, prefix: str = "portcullis-resource:dpop-jti:") -> None:
        self._redis = client
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisReplayStore:
        import redis.asyncio  # the optional extra portcullis-resource[redis]

        return cls(redis.asyncio.Redis.from_url(url), **kwargs)

    async def first_use(self, key: str, ttl: float, now: float) -> bool:
        stored = await self._redis.set(self._prefix + key, b"1", nx=True, px=max(1, int(ttl * 1000)))
        return bool(stored)


def replay_key(jkt: str, jti: str) -> str:
    """The key under which a proof's ``jti`` is remembered: per DPoP key, hashed (bounded length)."""
    return hashlib.sha256(f"{jkt}:{jti}".encode()).hexdigest()
