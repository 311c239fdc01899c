"""Rate limits per IP, per wallet address, per client and global on the sign-in endpoints.

A limit is named ``<endpoint>:<dimension>`` (``verify:ip``) or ``<endpoint>:<budget>:<dimension>``
(``nonce:outstanding:ip``); the dimension says which request attribute keys it: ``ip`` (IPv4 address or
IPv6 /64, see ``app.risk.keys``), ``address``, ``client`` or ``global``. ``RateLimiter.check`` charges
every limit of the endpoint in one all-or-nothing step: a refused request spends nothing, so a client
held back by its own per-IP limit cannot drain the global budget everyone shares. Nonce flooding and
the defaults are described in docs/RATE_LIMITS.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

from app.clock import Clock
from app.risk.errors import RateLimited
from app.risk.gcra import Limit, Verdict
from app.risk.keys import address_key, client_key, ip_key
from app.risk.memory import MemoryBackend
from app.risk.redis_backend import RedisBackend

__all__ = [
    "DEFAULT_LIMITS",
    "DIMENSIONS",
    "OUTSTANDING_NONCES",
    "Limit",
    "LimiterBackend",
    "MemoryBackend",
    "RateLimited",
    "RateLimiter",
    "RedisBackend",
    "Verdict",
]

DIMENSIONS = ("ip", "address", "client", "global")
OUTSTANDING_NONCES = "nonce:outstanding:ip"


class LimiterBackend(Protocol):
    async def hit(self, key: str, limit: Limit, now: float, cost: int = 1) -> Verdict:
        """Charge ``cost`` requests to ``key`` at ``now`` (Unix seconds); a negative cost pays back."""
        ...

    async def hit_many(self, items: Sequence[tuple[str, Limit]], now: float, cost: int = 1) -> list[Verdict]:
        """Charge distinct keys at once, all or nothing: none is charged unless every one allows it."""
        ...

    async def refund(self, key: str, limit: Limit, now: float, cost: int = 1) -> None:
        """Pay ``cost`` requests back to ``key``, best effort and possibly without waiting for the store;
        calls made through this backend afterwards see it."""
        ...

    async def reset(self, key_prefix: str) -> None:
        """Forget every key starting with ``key_prefix`` (an operator's reset; tests)."""
        ...

    async def healthy(self) -> bool:
        """False when the shared store is unreachable and a stricter per-process fallback answers."""
        ...

    async def close(self) -> None: ...


def _limits(*limits: Limit) -> Mapping[str, Limit]:
    return MappingProxyType({limit.name: limit for limit in limits})


# Sized so that a person (or a NAT of a few dozen people) never meets them, while a burst of hundreds of
# requests a second from one IP is cut to ``burst`` and then the sustained rate. docs/RATE_LIMITS.md
# gives the reasoning for each row.
DEFAULT_LIMITS: Mapping[str, Limit] = _limits(
    Limit("nonce:ip", rate=120, per_seconds=60, burst=30),
    Limit(OUTSTANDING_NONCES, rate=30, per_seconds=600, burst=60),
    Limit("nonce:client", rate=150, per_seconds=1, burst=750),
    Limit("nonce:global", rate=300, per_seconds=1, burst=1500),
    Limit("verify:ip", rate=30, per_seconds=60, burst=10),
    Limit("verify:address", rate=60, per_seconds=60, burst=20),
    Limit("verify:client", rate=150, per_seconds=1, burst=750),
    Limit("verify:global", rate=300, per_seconds=1, burst=1500),
    Limit("token:ip", rate=300, per_seconds=60, burst=60),
    Limit("token:address", rate=30, per_seconds=60, burst=10),
    Limit("token:client", rate=250, per_seconds=1, burst=1250),
    Limit("token:global", rate=500, per_seconds=1, burst=2500),
    # Bot tokens under a delegation (app.oauth.jwt_bearer): the client dimension is the delegate's key.
    Limit("bot:ip", rate=300, per_seconds=60, burst=60),
    Limit("bot:client", rate=60, per_seconds=60, burst=20),
    Limit("bot:global", rate=500, per_seconds=1, burst=2500),
    Limit("mfa:ip", rate=30, per_seconds=60, burst=10),
    Limit("mfa:address", rate=10, per_seconds=300, burst=5),
    Limit("mfa:client", rate=50, per_seconds=1, burst=250),
    Limit("mfa:global", rate=100, per_seconds=1, burst=500),
    Limit("register:ip", rate=20, per_seconds=3600, burst=5),
    Limit("register:address", rate=5, per_seconds=3600, burst=3),
    Limit("register:client", rate=600, per_seconds=3600, burst=100),
    Limit("register:global", rate=60, per_seconds=60, burst=30),
)


def _dimension(name: str) -> tuple[str, str]:
    parts = name.split(":")
    if len(parts) not in (2, 3) or parts[-1] not in DIMENSIONS or not parts[0]:
        raise ValueError(f"limit name {name!r} is not <endpoint>[:<budget>]:<{'|'.join(DIMENSIONS)}>")
    return parts[0], parts[-1]


class RateLimiter:
    """Checks requests against ``limits`` in ``backend`` at the time ``clock`` gives."""

    def __init__(self, backend: LimiterBackend, limits: Mapping[str, Limit], clock: Clock) -> None:
        self.backend = backend
        self._clock = clock
        self._limits = dict(limits)
        self._plans: dict[str, list[tuple[str, Limit]]] = {}
        for name, limit in self._limits.items():
            if name != limit.name:
                raise ValueError(f"limit {limit.name!r} is filed under {name!r}")
            endpoint, dimension = _dimension(name)
            self._plans.setdefault(endpoint, []).append((dimension, limit))

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def plan(
        self, endpoint: str, *, ip: str | None, address: str | None = None, client_id: str | None = None
    ) -> list[tuple[str, Limit]]:
        """The keys and limits one request to ``endpoint`` is charged to.

        ``ip`` None shares one 'unknown' budget; ``address`` and ``client_id`` None skip those limits.
        """
        plan = self._plans.get(endpoint)
        if plan is None:
            raise ValueError(f"no rate limits are configured for endpoint {endpoint!r}")
        items: list[tuple[str, Limit]] = []
        for dimension, limit in plan:
            if dimension == "ip":
                items.append((f"{limit.name}:{ip_key(ip)}", limit))
            elif dimension == "global":
                items.append((limit.name, limit))
            elif dimension == "address" and address is not None:
                items.append((f"{limit.name}:{address_key(address)}", limit))
            elif dimension == "client" and client_id is not None:
                items.append((f"{limit.name}:{client_key(client_id)}", limit))
        return items

    async def check(
        self, endpoint: str, *, ip: str | None, address: str | None = None, client_id: str | None = None
    ) -> None:
        """Charge one request to every limit of ``endpoint`` (:meth:`plan`); raise RateLimited when any
        is exhausted (all or nothing: a refused request is charged nothing)."""
        items = self.plan(endpoint, ip=ip, address=address, client_id=client_id)
        if items:
            judge(items, await self.backend.hit_many(items, self._now()))

    async def redeem_nonce(self, *, ip: str | None) -> None:
        """Pay back one outstanding nonce of ``ip``: call it when verify consumed a nonce.

        ``check("nonce", ...)`` charges the ``nonce:outstanding:ip`` budget for every nonce issued;
        a nonce that is used is paid back here, so only nonces issued and never used keep counting
        against the IP that asked for them (nonce flooding). The budget never rises above full.
        """
        limit = self._limits.get(OUTSTANDING_NONCES)
        if limit is not None:
            await self.backend.refund(f"{limit.name}:{ip_key(ip)}", limit, self._now())

    async def healthy(self) -> bool:
        return await self.backend.healthy()


def judge(items: Sequence[tuple[str, Limit]], verdicts: Sequence[Verdict]) -> None:
    """Raise RateLimited, with the longest wait, when any of ``items`` was refused."""
    refused = [(limit.name, v) for (_, limit), v in zip(items, verdicts, strict=True) if not v.allowed]
    if refused:
        wait = max(v.retry_after for _, v in refused)
        raise RateLimited(
            f"too many requests; retry in {max(1, math.ceil(wait))} s",
            retry_after=wait,
            debug="limited by " + ", ".join(name for name, _ in refused),
        )
