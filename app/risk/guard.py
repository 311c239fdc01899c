"""The request guard: rate limits and failure-spike locks in front of the sign-in, token and MFA endpoints.

Composition of app.risk.limits (GCRA budgets) and app.risk.anomaly (EWMA failure counters), built once per
app from Settings; docs/RATE_LIMITS.md. A locked IP gets 429 like an exhausted budget; addresses are
only ever locked by second-factor failures, so nobody can lock a victim's wallet by sending bad
signatures in its name.

In process, admission is decided before the request's work starts. With Redis, ``admitted`` sends the
IP's lock lookup and the budget charge as one script and lets the work go on while the answer travels
(a Redis round trip here is 0.1-1 ms, a tenth of a sign-in): the work may read and check, but it awaits
the ``Gate`` before it writes anything, and a refusal outranks whatever else the work concluded. So a
refused request stores nothing, spends no nonce or second factor and is not counted as a failure, as in
process. Refusals are remembered in this process until their Retry-After, so a flood from one IP is
turned away locally after Redis first refuses it and does no work.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app.clock import Clock
from app.errors import TemporarilyUnavailable
from app.risk.anomaly import AnomalyDetector, LockEvent
from app.risk.counters import MemoryCounterStore
from app.risk.errors import RateLimited
from app.risk.gcra import Limit
from app.risk.limits import DEFAULT_LIMITS, LimiterBackend, RateLimiter, judge
from app.risk.memory import MemoryBackend
from app.risk.redis_backend import RedisBackend, RedisCounterStore, RedisLink
from app.settings import Settings
from app.storage.redis import build_redis

REFUSALS_KEPT = 10_000  # remembered refusals per process; beyond it the expired go, then the oldest


class Gate:
    """A request's admission: decided already (in process), or Redis's answer on its way."""

    __slots__ = ("_answer",)

    def __init__(self, answer: asyncio.Future[None] | None = None) -> None:
        self._answer = answer
        if answer is not None:
            answer.add_done_callback(_retrieve)

    async def wait(self) -> None:
        """Return once the request is admitted; raise RateLimited when it is not. Call it before any
        write; calling it again gives the same answer."""
        if self._answer is not None:
            # shielded: a client that hangs up must not cancel a charge Redis may already have made
            await asyncio.shield(self._answer)


ADMITTED = Gate()


def _retrieve(answer: asyncio.Future[None]) -> None:
    if not answer.cancelled():
        answer.exception()  # a refusal nobody awaited (the work failed first) is not an asyncio warning


@dataclass(slots=True)
class Shared:
    """The Redis side of a guard: budgets and locks on one connection (``build_guard``)."""

    limits: RedisBackend
    counters: RedisCounterStore


@dataclass(slots=True)
class Guard:
    limiter: RateLimiter | None  # None: limits switched off (PORTCULLIS_RATE_LIMITS=false)
    detector: AnomalyDetector
    backend: LimiterBackend
    clock: Clock
    shared: Shared | None = None  # limits and locks in Redis
    # PORTCULLIS_REDIS_OUTAGE=refuse: while Redis is unreachable, guarded requests are 503 (fail closed)
    # instead of being judged by the stricter per-process fallback.
    refuse_without_redis: bool = False
    # key -> end in Unix seconds: a lock or a budget Redis refused, until it would allow it again
    _refused: dict[str, float] = field(default_factory=dict)

    async def admit(
        self, endpoint: str, *, ip: str | None, address: str | None = None, client_id: str | None = None
    ) -> None:
        """Raise RateLimited (429 with Retry-After) when a budget is spent or the IP is locked."""
        gate = await self.begin(endpoint, ip=ip, address=address, client_id=client_id)
        await gate.wait()

    @contextlib.asynccontextmanager
    async def admitted(
        self, endpoint: str, *, ip: str | None, address: str | None = None, client_id: str | None = None
    ) -> AsyncIterator[Gate]:
        """Run a request's work while its admission is decided; the work awaits the gate before writing.

        Whatever the work raises, a refusal is raised instead; and the gate is awaited before the
        response leaves even when the work never asked.
        """
        gate = await self.begin(endpoint, ip=ip, address=address, client_id=client_id)
        try:
            yield gate
        except Exception:
            await gate.wait()
            raise
        await gate.wait()

    async def begin(
        self, endpoint: str, *, ip: str | None, address: str | None = None, client_id: str | None = None
    ) -> Gate:
        """Start deciding one request. In process the decision is made here (RateLimited is raised
        now); with Redis, only a refusal this process already knows of is raised now."""
        if self.shared is None:
            self._raise_if_locked(await self.detector.locked_until(ip=ip, address=None), ip)
            if self.limiter is not None:
                await self.limiter.check(endpoint, ip=ip, address=address, client_id=client_id)
            return ADMITTED
        items = []
        if self.limiter is not None:
            items = self.limiter.plan(endpoint, ip=ip, address=address, client_id=client_id)
        lock_keys = self.detector.lock_keys(ip=ip, address=None)
        now = self.clock.now().timestamp()
        self._raise_if_refused(lock_keys, items, now, ip)
        return Gate(asyncio.ensure_future(self._remote(self.shared, lock_keys, items, now, ip)))

    async def _remote(
        self, shared: Shared, lock_keys: list[str], items: list[tuple[str, Limit]], now: float, ip: str | None
    ) -> None:
        # A lock taken while Redis was down stays in force: this process's own copy is asked first.
        until = await shared.counters.fallback.locked_until(lock_keys, now)
        if until is None:
            answer = await shared.limits.admit([shared.counters.redis_key(k) for k in lock_keys], items, now)
            if answer is None and self.refuse_without_redis:
                raise TemporarilyUnavailable("Redis is not reachable: rate limits cannot be checked")
            if answer is None:  # Redis is unusable: the stricter per-process fallbacks answer
                until = await shared.counters.locked_until(lock_keys, now)
                self._raise_if_locked(_at(until), ip)
                if items:
                    judge(items, await shared.limits.hit_many(items, now))
                return
            until = answer.locked_until
            if until is None:
                for (key, _), verdict in zip(items, answer.verdicts, strict=True):
                    if not verdict.allowed:
                        self._remember(key, now + verdict.retry_after)
                judge(items, answer.verdicts)
                return
        for key in lock_keys:
            self._remember(key, until)
        self._raise_if_locked(_at(until), ip)

    def _remember(self, key: str, until: float) -> None:
        refused = self._refused
        refused.pop(key, None)
        refused[key] = until  # last in the dict: the newest
        if len(refused) > REFUSALS_KEPT:
            now = self.clock.now().timestamp()
            kept = [(k, end) for k, end in refused.items() if end > now][-(REFUSALS_KEPT // 2) :]
            self._refused = dict(kept)

    def _raise_if_refused(
        self, lock_keys: Sequence[str], items: Sequence[tuple[str, Limit]], now: float, ip: str | None
    ) -> None:
        for key in lock_keys:
            end = self._refused.get(key, 0.0)
            if end > now:
                self._raise_if_locked(_at(end), ip)
        waits = [
            (limit.name, end - now) for key, limit in items if (end := self._refused.get(key, 0.0)) > now
        ]
        if waits:
            wait = max(w for _, w in waits)
            raise RateLimited(
                f"too many requests; retry in {max(1, math.ceil(wait))} s",
                retry_after=wait,
                debug="limited by " + ", ".join(name for name, _ in waits) + " (refused before)",
            )

    def _raise_if_locked(self, until: datetime | None, ip: str | None) -> None:
        if until is not None:
            wait = max(1, math.ceil((until - self.clock.now()).total_seconds()))
            raise RateLimited(
                f"too many failed attempts from this network; retry in {wait} s",
                retry_after=wait,
                debug="the client IP is locked after a failure spike",  # the IP itself: never in a log
                cause="lock",
            )

    async def address_locked(self, address: str) -> bool:
        return await self.detector.locked(ip=None, address=address)

    async def failed(self, *, ip: str | None, address: str | None = None) -> tuple[LockEvent, ...]:
        return await self.detector.failure(ip=ip, address=address)

    async def redeem_nonce(self, ip: str | None) -> None:
        if self.limiter is not None:
            await self.limiter.redeem_nonce(ip=ip)

    async def healthy(self) -> bool:
        return await self.backend.healthy()

    async def close(self) -> None:
        await self.backend.close()


def _at(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def build_guard(settings: Settings, clock: Clock, *, redis_prefix: str = "portcullis:") -> Guard:
    """``redis_prefix`` starts every Redis key (limits under ``rl:``, failure counters under ``anomaly:``)."""
    backend: LimiterBackend
    counters: MemoryCounterStore | RedisCounterStore
    shared = None
    if settings.redis_url:
        link = RedisLink(build_redis(settings))  # one client, one circuit breaker for both
        limits = RedisBackend(settings.redis_url, MemoryBackend(), prefix=redis_prefix + "rl:", link=link)
        counters = RedisCounterStore(settings.redis_url, prefix=redis_prefix + "anomaly:", link=link)
        backend, shared = limits, Shared(limits, counters)
    else:
        backend = MemoryBackend()
        counters = MemoryCounterStore()
    detector = AnomalyDetector(
        counters,
        clock,
        threshold=settings.lock_threshold,
        ip_threshold=settings.lock_ip_threshold,
        cooldown=float(settings.lock_cooldown_seconds),
    )
    limiter = RateLimiter(backend, DEFAULT_LIMITS, clock) if settings.rate_limits else None
    return Guard(limiter, detector, backend, clock, shared, settings.redis_outage == "refuse")
