"""The request guard: rate limits and failure-spike locks in front of the sign-in, token and MFA endpoints.

Composition of app.risk.limits (GCRA budgets) and app.risk.anomaly (EWMA failure counters), built once per
app from Settings; docs/RATE_LIMITS.md. A locked IP gets 429 like an exhausted budget; addresses are
only ever locked by second-factor failures, so nobody can lock a victim's wallet by sending bad
signatures in its name.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import datetime

from app.clock import Clock
from app.risk.anomaly import AnomalyDetector, LockEvent
from app.risk.counters import MemoryCounterStore
from app.risk.errors import RateLimited
from app.risk.limits import DEFAULT_LIMITS, LimiterBackend, RateLimiter
from app.risk.memory import MemoryBackend
from app.risk.redis_backend import RedisBackend, RedisCounterStore
from app.settings import Settings


@dataclass(slots=True)
class Guard:
    limiter: RateLimiter | None  # None: limits switched off (PORTCULLIS_RATE_LIMITS=false)
    detector: AnomalyDetector
    backend: LimiterBackend
    clock: Clock
    remote: bool = False  # limits and locks live in Redis: send the lookup and the check together

    async def admit(
        self, endpoint: str, *, ip: str | None, address: str | None = None, client_id: str | None = None
    ) -> None:
        """Raise RateLimited (429 with Retry-After) when a budget is spent or the IP is locked.

        With Redis the lock lookup and the budget check go out together (one round trip's wait, not two);
        a locked IP's request is then paid back, so a lock still keeps it from draining shared budgets.
        """
        if self.limiter is None or not self.remote:
            # In process there is nothing to wait for: look the lock up first, charge only if unlocked.
            self._raise_if_locked(await self.detector.locked_until(ip=ip, address=None), ip)
            if self.limiter is not None:
                await self.limiter.check(endpoint, ip=ip, address=address, client_id=client_id)
            return
        lookup = self.detector.locked_until(ip=ip, address=None)
        charge = self.limiter.check(endpoint, ip=ip, address=address, client_id=client_id)
        until, charged = await asyncio.gather(lookup, charge, return_exceptions=True)
        if isinstance(until, BaseException):
            if not isinstance(charged, BaseException):
                await self.limiter.refund(charged)
            raise until
        if until is not None and not isinstance(charged, BaseException):
            await self.limiter.refund(charged)
        self._raise_if_locked(until, ip)
        if isinstance(charged, BaseException):
            raise charged

    def _raise_if_locked(self, until: datetime | None, ip: str | None) -> None:
        if until is not None:
            wait = max(1, math.ceil((until - self.clock.now()).total_seconds()))
            raise RateLimited(
                f"too many failed attempts from this network; retry in {wait} s",
                retry_after=wait,
                debug=f"ip {ip} locked after a failure spike",
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


def build_guard(settings: Settings, clock: Clock, *, redis_prefix: str = "portcullis:") -> Guard:
    """``redis_prefix`` starts every Redis key (limits under ``rl:``, failure counters under ``anomaly:``)."""
    backend: LimiterBackend
    if settings.redis_url:
        backend = RedisBackend(settings.redis_url, MemoryBackend(), prefix=redis_prefix + "rl:")
        counters: MemoryCounterStore | RedisCounterStore = RedisCounterStore(
            settings.redis_url, prefix=redis_prefix + "anomaly:"
        )
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
    return Guard(limiter, detector, backend, clock, remote=bool(settings.redis_url))
