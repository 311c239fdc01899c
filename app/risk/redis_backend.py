"""Shared budgets and counters in Redis, so every replica draws on one budget; per-process fallback.

Each check is one Lua script (EVALSHA): the GCRA arithmetic of ``app.risk.gcra`` run on every key of
the check inside Redis, all or nothing, so concurrent replicas never both spend the last request. The
keys of one script must live on one node (single Redis or a replica set; not a sharded cluster).

Redis is reached through redis-py's asyncio client (``app.storage.redis``). When Redis fails (refused,
reset, timed out after the client's socket timeout), the call is answered by the
per-process fallback with stricter limits, and Redis is left alone for ``retry_seconds`` (a circuit
breaker: a dead Redis must not add a timeout to every request); then one call probes it again. The
limiter is never unlimited: without Redis each process enforces ``fallback_factor`` of every budget.
Times are the caller's (its injected clock), so replicas should keep their clocks in NTP sync: a skew
of ``d`` seconds lets a key through at most ``d / interval`` requests early.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.risk.counters import FORGET_BELOW, MemoryCounterStore, decayed
from app.risk.gcra import MICROS, Limit, Verdict, to_micros
from app.risk.memory import MemoryBackend
from app.storage.redis import FAILURES, client_options, close_redis

log = logging.getLogger("portcullis.risk")

Arg = bytes | str | int | float

# KEYS: first ARGV[3] lock keys (app.risk.anomaly's, each holding a lock's end in seconds), then the
# budget keys of one check. ARGV: now_us, cost, lock count, then interval_us and tolerance_us for each
# budget key. Mirrors app.risk.gcra.gcra. Reply: "L,<end>" when a lock is in force (nothing is charged),
# else "allowed,retry_us,remaining,..." for each budget key, as one string.
GCRA_LUA = """
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local locks = tonumber(ARGV[3])
local stored = redis.call('MGET', unpack(KEYS))
local lock_end = nil
for i = 1, locks do
  local v = stored[i] and tonumber(stored[i])
  if v and v * 1000000 > now and (not lock_end or v > lock_end) then lock_end = v end
end
if lock_end then return 'L,' .. string.format('%.6f', lock_end) end
local out = {}
local tats = {}
local all = true
for i = locks + 1, #KEYS do
  local interval = tonumber(ARGV[2 + 2 * (i - locks)])
  local tolerance = tonumber(ARGV[3 + 2 * (i - locks)])
  local base = now
  local tat = stored[i] and tonumber(stored[i])
  if tat and tat > now then base = tat end
  local new_tat
  if cost < 0 then
    new_tat = math.max(now, base + cost * interval)
    out[#out + 1] = string.format('1,0,%d', math.floor((now + tolerance - new_tat) / interval))
  else
    new_tat = base + cost * interval
    local allow_at = new_tat - tolerance
    if allow_at > now then
      all = false
      out[#out + 1] = string.format('0,%.0f,0', allow_at - now)
    else
      out[#out + 1] = string.format('1,0,%d', math.floor((now - allow_at) / interval))
    end
  end
  tats[i] = new_tat
end
if all then
  for i = locks + 1, #KEYS do
    if tats[i] > now then
      redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000))
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return table.concat(out, ',')
"""

# KEYS[1]: a counter hash {s: score, t: time}. ARGV: now, half_life, amount. Reply: the new score.
BUMP_LUA = """
local now = tonumber(ARGV[1])
local half_life = tonumber(ARGV[2])
local score = 0
local v = redis.call('HMGET', KEYS[1], 's', 't')
if v[1] and v[2] then
  local elapsed = math.max(0, now - tonumber(v[2]))
  score = tonumber(v[1]) * math.pow(2, -elapsed / half_life)
end
score = score + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 's', string.format('%.17g', score), 't', string.format('%.17g', now))
local forget = half_life * math.log(score / tonumber(ARGV[4])) / math.log(2)
redis.call('PEXPIRE', KEYS[1], math.max(1000, math.ceil(forget * 1000)))
return string.format('%.17g', score)
"""

# KEYS[1]: a lock holding its end time. ARGV: now, until. Reply: 1 when this call started the lock.
LOCK_LUA = """
local now = tonumber(ARGV[1])
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) > now then return 0 end
local ttl = math.max(1, math.ceil((tonumber(ARGV[2]) - now) * 1000))
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
return 1
"""


def _end(value: object, now: float) -> float | None:
    """A stored lock end (seconds, as text) if it is still in force at ``now``."""
    if not isinstance(value, bytes):
        return None
    end = float(value)
    return end if end > now else None


def _later(a: float | None, b: float | None) -> float | None:
    return max(a, b) if a is not None and b is not None else a if a is not None else b


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisLink:
    """One Redis client (redis-py, ``app.storage.redis.build_redis``) plus the circuit breaker that sends
    callers to their fallback."""

    def __init__(self, client: Redis, *, retry_seconds: float = 2.0) -> None:
        self.client = client
        self._retry_seconds = retry_seconds
        self._down_until: float | None = None
        self._pending: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 0.5, retry_seconds: float = 2.0) -> RedisLink:
        """A link with a plain client for ``url`` (tests, benches); the app builds its client from
        Settings with ``build_redis``."""
        return cls(Redis.from_url(url, **client_options(timeout)), retry_seconds=retry_seconds)

    def script(self, source: str) -> Any:
        """An EVALSHA runner for ``source`` (redis-py sends the script in full on NOSCRIPT)."""
        return self.client.register_script(source)

    def later(self, call: Any) -> None:
        """Run ``call`` (an awaitable) without the caller waiting for it; its failure is logged."""
        task = asyncio.ensure_future(call)
        self._pending.add(task)
        task.add_done_callback(self._settle)

    async def settled(self) -> None:
        """Wait for the calls ``later`` sent: what is sent next must see their effect (a refund before
        the next check of the same budget). Free when none is outstanding, the common case."""
        if self._pending:
            await asyncio.wait(set(self._pending))

    def _settle(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("a deferred Redis call failed: %r", task.exception())

    def usable(self, now: float) -> bool:
        if self._down_until is None:
            return True
        if now < self._down_until:
            return False
        # Half open: this caller probes Redis; the others keep to the fallback until it answers.
        self._down_until = now + self._retry_seconds
        return True

    def failed(self, now: float, exc: BaseException) -> None:
        if self._down_until is None:
            log.warning("Redis unavailable, using the stricter per-process fallback: %r", exc)
        self._down_until = now + self._retry_seconds

    def succeeded(self) -> None:
        if self._down_until is not None:
            log.warning("Redis answers again; shared limits resumed")
            self._down_until = None

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except FAILURES:
            return False

    async def delete_matching(self, pattern: str) -> None:
        cursor = 0
        while True:
            cursor, keys = await self.client.scan(cursor, match=pattern, count=500)
            if keys:
                await self.client.unlink(*keys)
            if not cursor:
                return

    async def close(self) -> None:
        if self._pending:  # deferred refunds still go out before the pool closes
            await asyncio.wait(set(self._pending), timeout=1.0)
        await close_redis(self.client)


@dataclass(frozen=True, slots=True)
class Admitted:
    """What Redis answered for one request: a lock in force (and nothing charged), or the verdicts."""

    locked_until: float | None
    verdicts: list[Verdict]


class RedisBackend:
    """Rate-limit budgets shared by every replica that points at the same Redis and ``prefix``.

    ``link``: share one connection and one circuit breaker with a RedisCounterStore (``build_guard``), so
    that ``admit`` can look up its locks and charge budgets in one script.
    """

    def __init__(
        self,
        url: str,
        fallback: MemoryBackend,
        fallback_factor: float = 0.25,
        *,
        prefix: str = "portcullis:rl:",
        timeout: float = 0.5,
        retry_seconds: float = 2.0,
        link: RedisLink | None = None,
    ) -> None:
        if not 0 < fallback_factor <= 1:
            raise ValueError("fallback_factor must be in (0, 1]: the fallback is never looser than Redis")
        self._link = link or RedisLink.from_url(url, timeout=timeout, retry_seconds=retry_seconds)
        self._script = self._link.script(GCRA_LUA)
        self._fallback = fallback
        self._factor = fallback_factor
        self._prefix = prefix
        self._scaled: dict[Limit, Limit] = {}

    @property
    def client(self) -> Redis:
        """The redis-py client under this backend (start-up's credential check, /ready's PING)."""
        return self._link.client

    async def hit(self, key: str, limit: Limit, now: float, cost: int = 1) -> Verdict:
        return (await self.hit_many([(key, limit)], now, cost))[0]

    async def hit_many(self, items: Sequence[tuple[str, Limit]], now: float, cost: int = 1) -> list[Verdict]:
        if not items:
            return []
        answer = await self._run((), items, now, cost)
        if answer is not None:
            return answer.verdicts
        stricter = [(key, self.stricter(limit)) for key, limit in items]
        return self._fallback.charge(stricter, to_micros(now), cost)

    async def admit(
        self, lock_keys: Sequence[str], items: Sequence[tuple[str, Limit]], now: float
    ) -> Admitted | None:
        """One request: unless one of ``lock_keys`` (whole Redis keys) holds a lock in force, charge
        ``items`` all or nothing; one script, one round trip. None when Redis is unusable or failed:
        the caller then asks the per-process fallbacks."""
        return await self._run(lock_keys, items, now, 1)

    async def _run(
        self, lock_keys: Sequence[str], items: Sequence[tuple[str, Limit]], now: float, cost: int
    ) -> Admitted | None:
        if not self._link.usable(now):
            return None
        args: list[Arg] = [to_micros(now), cost, len(lock_keys)]
        for _, limit in items:
            if cost > limit.burst:
                raise ValueError(f"cost {cost} exceeds the burst of {limit.name!r}: never allowed")
            args += (limit.interval_us, limit.tolerance_us)
        await self._link.settled()
        try:
            keys = [*lock_keys, *(self._prefix + key for key, _ in items)]
            reply = await self._script(keys=keys, args=args)
        except FAILURES as exc:
            self._link.failed(now, exc)
            return None
        self._link.succeeded()
        if reply.startswith(b"L,"):
            return Admitted(float(reply[2:]), [])
        n = [int(x) for x in reply.split(b",")] if reply else []
        return Admitted(None, [Verdict(n[i] == 1, n[i + 1] / MICROS, n[i + 2]) for i in range(0, len(n), 3)])

    async def refund(self, key: str, limit: Limit, now: float, cost: int = 1) -> None:
        """Pay back without waiting for Redis: a refund must not delay a response. It is sent in a task
        of its own, which this backend's next call waits for; one lost (Redis restarting) costs a client
        one request."""
        if self._link.usable(now):
            args: list[Arg] = [to_micros(now), -cost, 0, limit.interval_us, limit.tolerance_us]
            self._link.later(self._script(keys=[self._prefix + key], args=args))
            return
        await self.hit(key, limit, now, -cost)

    def stricter(self, limit: Limit) -> Limit:
        scaled = self._scaled.get(limit)
        if scaled is None:
            scaled = self._scaled[limit] = limit.scaled(self._factor)
        return scaled

    async def reset(self, key_prefix: str) -> None:
        await self._fallback.reset(key_prefix)
        try:
            await self._link.delete_matching(_glob_escape(self._prefix + key_prefix) + "*")
        except FAILURES as exc:
            log.warning("could not reset %r in Redis: %r", key_prefix, exc)

    async def healthy(self) -> bool:
        """Redis answers a PING. False means the stricter per-process fallback is in use."""
        return await self._link.ping()

    async def close(self) -> None:
        await self._link.close()


class RedisCounterStore:
    """Anomaly counters and locks shared by every replica; while Redis is down, a per-process store in
    which each failure weighs ``1 / fallback_factor`` (thresholds are reached sooner: stricter)."""

    def __init__(
        self,
        url: str,
        fallback: MemoryCounterStore | None = None,
        fallback_factor: float = 0.25,
        *,
        prefix: str = "portcullis:anomaly:",
        timeout: float = 0.5,
        retry_seconds: float = 2.0,
        link: RedisLink | None = None,
    ) -> None:
        if not 0 < fallback_factor <= 1:
            raise ValueError("fallback_factor must be in (0, 1]")
        self._link = link or RedisLink.from_url(url, timeout=timeout, retry_seconds=retry_seconds)
        self._bump = self._link.script(BUMP_LUA)
        self._lock = self._link.script(LOCK_LUA)
        self.fallback = fallback or MemoryCounterStore()
        self._fallback_amount = 1.0 / fallback_factor
        self._prefix = prefix

    def redis_key(self, key: str) -> str:
        """The Redis key that holds ``key`` (for RedisBackend.admit's lock lookup)."""
        return self._prefix + key

    async def bump(self, key: str, now: float, half_life: float) -> float:
        if self._link.usable(now):
            try:
                reply = await self._bump(keys=[self._prefix + key], args=[now, half_life, 1.0, FORGET_BELOW])
            except FAILURES as exc:
                self._link.failed(now, exc)
            else:
                self._link.succeeded()
                return float(reply)
        return self.fallback.add(key, now, half_life, self._fallback_amount)

    async def peek(self, key: str, now: float, half_life: float) -> float:
        if self._link.usable(now):
            try:
                reply = await self._link.client.hmget(self._prefix + key, ["s", "t"])
            except FAILURES as exc:
                self._link.failed(now, exc)
            else:
                self._link.succeeded()
                score, since = reply
                if not isinstance(score, bytes) or not isinstance(since, bytes):
                    return 0.0
                return decayed(float(score), float(since), now, half_life)
        return await self.fallback.peek(key, now, half_life)

    async def lock(self, key: str, now: float, until: float) -> bool:
        if self._link.usable(now):
            try:
                reply = await self._lock(keys=[self._prefix + key], args=[now, until])
            except FAILURES as exc:
                self._link.failed(now, exc)
            else:
                self._link.succeeded()
                return bool(reply)
        return await self.fallback.lock(key, now, until)

    async def locked_until(self, keys: Sequence[str], now: float) -> float | None:
        return max((u for u in await self.ends(keys, now) if u is not None), default=None)

    async def ends(self, keys: Sequence[str], now: float) -> list[float | None]:
        # The fallback is consulted too: a lock taken while Redis was down stays in force.
        local = await self.fallback.ends(keys, now)
        if self._link.usable(now):
            try:
                values = await self._link.client.mget([self._prefix + k for k in keys])
            except FAILURES as exc:
                self._link.failed(now, exc)
            else:
                self._link.succeeded()
                return [_later(_end(v, now), mine) for v, mine in zip(values, local, strict=True)]
        return local

    async def mark(self, key: str, now: float, until: float) -> None:
        ttl = max(1, math.ceil((until - now) * 1000))
        if self._link.usable(now):
            try:
                await self._link.client.set(self._prefix + key, repr(until), px=ttl)
            except FAILURES as exc:
                self._link.failed(now, exc)
            else:
                self._link.succeeded()
                return
        await self.fallback.mark(key, now, until)

    async def clear(self, keys: Sequence[str]) -> None:
        """Clears this process's fallback copy, then Redis; raises a redis-py error when Redis is
        unreachable (an admin command must not report success it did not have)."""
        await self.fallback.clear(keys)
        await self._link.client.delete(*[self._prefix + k for k in keys])

    async def healthy(self) -> bool:
        return await self._link.ping()

    async def close(self) -> None:
        await self._link.close()
