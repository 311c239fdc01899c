"""Failure-spike detection: decaying failure counters per wallet address, per IP and globally.

Every refused sign-in (or MFA) attempt is reported with ``failure``. When an address's or an IP's
counter (``app.risk.counters``: an exponentially weighted moving sum with ``half_life``) reaches its
threshold, that address or IP is locked for ``cooldown`` seconds and a ``LockEvent`` is returned for the
caller to audit and count. While the global counter is above ``global_threshold`` (a campaign spread
over many IPs and addresses) the per-address and per-IP thresholds are multiplied by ``alert_factor``.
Locks end by time or by ``unlock`` (the admin command). How endpoints call this without enabling
account enumeration is in docs/RATE_LIMITS.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from app.clock import Clock
from app.risk.counters import CounterStore
from app.risk.keys import address_key, ip_key

DEFAULT_HALF_LIFE = 300.0  # seconds
DEFAULT_THRESHOLD = 10.0  # per address: ten failures in quick succession
DEFAULT_IP_THRESHOLD = 30.0  # per IP: NATs put many people behind one address
DEFAULT_GLOBAL_THRESHOLD = 1000.0  # about 2.3 failures/s sustained with the default half-life
DEFAULT_COOLDOWN = 900.0  # seconds

GLOBAL = "score:global"


@dataclass(frozen=True)
class LockEvent:
    """A lock that has just started: audit it (``risk.locked``) and count it (metric)."""

    # "client_ip" and "client": failed client authentication (app.risk.client_guard)
    what: Literal["ip", "address", "client_ip", "client"]
    key: str  # the normalised IP key (IPv4 address or IPv6 /64), the lower-case address, or client keys
    score: float
    until: datetime


class AnomalyDetector:
    def __init__(
        self,
        store: CounterStore,
        clock: Clock,
        *,
        half_life: float = DEFAULT_HALF_LIFE,
        threshold: float = DEFAULT_THRESHOLD,
        cooldown: float = DEFAULT_COOLDOWN,
        ip_threshold: float | None = DEFAULT_IP_THRESHOLD,
        global_threshold: float | None = DEFAULT_GLOBAL_THRESHOLD,
        alert_factor: float = 0.5,
    ) -> None:
        if half_life <= 0 or threshold <= 0 or cooldown <= 0 or not 0 < alert_factor <= 1:
            raise ValueError("half_life, threshold and cooldown must be > 0 and alert_factor in (0, 1]")
        self.store = store
        self._clock = clock
        self._half_life = half_life
        self._thresholds = {"address": threshold, "ip": ip_threshold or threshold}
        self._cooldown = cooldown
        self._global_threshold = global_threshold
        self._alert_factor = alert_factor

    async def failure(self, *, ip: str | None, address: str | None) -> tuple[LockEvent, ...]:
        """Count one failed attempt; return the locks it started (none, the IP's, the address's or both)."""
        now = self._clock.now().timestamp()
        factor = 1.0
        global_score = await self.store.bump(GLOBAL, now, self._half_life)
        if self._global_threshold is not None and global_score >= self._global_threshold:
            factor = self._alert_factor
        events: list[LockEvent] = []
        for what, key in _targets(ip, address):
            score = await self.store.bump(f"score:{what}:{key}", now, self._half_life)
            if score < self._thresholds[what] * factor:
                continue
            until = now + self._cooldown
            if await self.store.lock(f"lock:{what}:{key}", now, until):
                events.append(LockEvent(what, key, score, datetime.fromtimestamp(until, UTC)))
        return tuple(events)

    async def locked(self, *, ip: str | None, address: str | None) -> bool:
        """Is the IP or the address locked now?"""
        return await self.locked_until(ip=ip, address=address) is not None

    def lock_keys(self, *, ip: str | None, address: str | None) -> list[str]:
        """The store keys of the locks of ``ip`` and ``address``."""
        return [f"lock:{what}:{key}" for what, key in _targets(ip, address)]

    async def locked_until(self, *, ip: str | None, address: str | None) -> datetime | None:
        now = self._clock.now().timestamp()
        keys = self.lock_keys(ip=ip, address=address)
        if not keys:
            return None
        until = await self.store.locked_until(keys, now)
        return None if until is None else datetime.fromtimestamp(until, UTC)

    async def unlock(self, *, ip: str | None = None, address: str | None = None) -> None:
        """End the locks of ``ip`` and/or ``address`` now and forget their failure counts (admin command).

        ``ip`` may be an address or the key a LockEvent reported (an IPv6 /64).
        """
        keys: list[str] = []
        for what, key in _targets(ip, address):
            keys += [f"lock:{what}:{key}", f"score:{what}:{key}"]
        if keys:
            await self.store.clear(keys)

    async def global_score(self) -> float:
        """The global failure counter now (for a gauge metric)."""
        return await self.store.peek(GLOBAL, self._clock.now().timestamp(), self._half_life)


def _targets(ip: str | None, address: str | None) -> list[tuple[Literal["ip", "address"], str]]:
    targets: list[tuple[Literal["ip", "address"], str]] = []
    if ip is not None:
        targets.append(("ip", ip_key(ip)))
    if address is not None:
        targets.append(("address", address_key(address)))
    return targets
