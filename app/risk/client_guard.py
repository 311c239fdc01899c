"""RFC 6749 section 10.10 (credentials guessing): a failure budget and locks for client authentication.

Every endpoint that authenticates a client (/token, /par, /introspect, /revoke) asks :meth:`admit` before
the secret or assertion is checked and reports the outcome to :meth:`failed` or :meth:`succeeded`;
app.oauth.client_failures is the one caller. Three protections, keyed so that an attacker who cannot
authenticate as a client cannot lock that client's own servers out (docs/RATE_LIMITS.md):

- the pair lock: a (client_id, IP) pair whose decaying failure score (app.risk.counters) reaches
  ``pair_threshold`` is locked for ``cooldown`` seconds: that IP gets 429 for that client even with the
  right secret, other IPs are not affected;
- the IP spike lock of app.risk.anomaly: each failure counts against the IP as a failed sign-in does;
- the client's failure budget: a GCRA budget (app.risk.gcra) of ``budget`` failures per client_id over
  all IPs, refilled by one every ``refill_seconds``. A failure it refuses throttles the client: every
  source gets 429 for it until the budget allows one more failure, except an IP that authenticated as the
  client within ``trusted_seconds`` (a device cookie for servers). A guesser spread over many IPs is held
  to one guess per refill while the client's known servers go on.

Unknown client ids get the same budget and locks as registered ones, or the answers would tell them
apart. All of it applies whatever PORTCULLIS_RATE_LIMITS says: a security lock, not a throughput limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from app.clock import Clock
from app.risk.anomaly import DEFAULT_HALF_LIFE, AnomalyDetector, LockEvent
from app.risk.counters import CounterStore
from app.risk.errors import RateLimited
from app.risk.gcra import Limit
from app.risk.guard import Guard
from app.risk.keys import client_key, ip_key
from app.risk.limits import LimiterBackend
from app.settings import Settings

BUDGET = "clientauth:failures:client"


@dataclass(frozen=True, slots=True)
class Admission:
    """An attempt let through :meth:`ClientAuthGuard.admit`, to be reported as failed or succeeded."""

    client_id: str | None
    ip: str | None
    trusted_until: float | None  # until when this IP is a trusted source of the client; None: it is not


@dataclass(frozen=True, slots=True)
class Failure:
    """What one failed attempt started: locks to audit, and a 429 when the budget refused it."""

    locks: tuple[LockEvent, ...]
    refused: RateLimited | None


@dataclass(frozen=True, slots=True)
class _Keys:
    pair: str  # "<client key>|<ip key>": an ip key never holds "|"
    client: str

    @classmethod
    def of(cls, client_id: str, ip: str | None) -> _Keys:
        client = client_key(client_id)
        return cls(f"{client}|{ip_key(ip)}", client)

    @property
    def pair_lock(self) -> str:
        return f"lock:client_ip:{self.pair}"

    @property
    def client_lock(self) -> str:
        return f"lock:client:{self.client}"

    @property
    def trusted(self) -> str:
        return f"trusted:client_ip:{self.pair}"


class ClientAuthGuard:
    def __init__(
        self,
        counters: CounterStore,
        budgets: LimiterBackend,
        detector: AnomalyDetector,
        clock: Clock,
        *,
        budget: int,
        refill_seconds: float,
        pair_threshold: float,
        cooldown: float,
        trusted_seconds: float,
        half_life: float = DEFAULT_HALF_LIFE,
    ) -> None:
        self._counters = counters
        self._budgets = budgets
        self._detector = detector
        self._clock = clock
        self._limit = Limit(BUDGET, rate=1, per_seconds=refill_seconds, burst=budget)
        self._pair_threshold = pair_threshold
        self._cooldown = cooldown
        self._trusted_seconds = trusted_seconds
        self._half_life = half_life

    async def admit(self, client_id: str | None, ip: str | None) -> Admission:
        """Raise RateLimited (429, Retry-After) when the IP or the (client, IP) pair is locked, or the
        client's failure budget is spent and this IP is not a trusted source of it."""
        now = self._clock.now().timestamp()
        ip_locks = self._detector.lock_keys(ip=ip, address=None)
        if client_id is None:
            ends = await self._counters.ends(ip_locks, now)
            _refuse(ends[0], now, "too many failed attempts from this network")
            return Admission(None, ip, None)
        keys = _Keys.of(client_id, ip)
        ip_end, pair_end, client_end, trusted = await self._counters.ends(
            [*ip_locks, keys.pair_lock, keys.client_lock, keys.trusted], now
        )
        _refuse(ip_end, now, "too many failed attempts from this network")
        _refuse(pair_end, now, "too many failed authentications of this client from this network")
        if trusted is None:
            _refuse(client_end, now, "too many failed authentications of this client")
        return Admission(client_id, ip, trusted)

    async def failed(self, admission: Admission) -> Failure:
        """Count a failed authentication against the IP, the pair and the client's budget."""
        now = self._clock.now().timestamp()
        locks = list(await self._detector.failure(ip=admission.ip, address=None))
        if admission.client_id is None:
            return Failure(tuple(locks), None)
        keys = _Keys.of(admission.client_id, admission.ip)
        score = await self._counters.bump(f"score:client_ip:{keys.pair}", now, self._half_life)
        if score >= self._pair_threshold:
            until = now + self._cooldown
            if await self._counters.lock(keys.pair_lock, now, until):
                locks.append(LockEvent("client_ip", keys.pair, score, _at(until)))
        verdict = await self._budgets.hit(f"{BUDGET}:{keys.client}", self._limit, now)
        if verdict.allowed:
            return Failure(tuple(locks), None)
        until = now + verdict.retry_after
        if await self._counters.lock(keys.client_lock, now, until):
            locks.append(LockEvent("client", keys.client, float(self._limit.burst), _at(until)))
        refused = RateLimited(
            f"too many failed authentications of this client; retry in {_seconds(until - now)} s",
            retry_after=until - now,
            debug=f"failure budget of client {keys.client!r} spent",
        )
        return Failure(tuple(locks), refused)

    async def succeeded(self, admission: Admission) -> None:
        """Remember the IP as a trusted source of the client (refreshed once half its time has passed)."""
        if admission.client_id is None or self._trusted_seconds <= 0:
            return
        now = self._clock.now().timestamp()
        if admission.trusted_until is not None and admission.trusted_until - now > self._trusted_seconds / 2:
            return
        keys = _Keys.of(admission.client_id, admission.ip)
        await self._counters.mark(keys.trusted, now, now + self._trusted_seconds)

    async def unlock(self, client_id: str, ip: str | None = None) -> None:
        """End a client's throttle now and refill its budget; with ``ip``, that pair's lock too (admin)."""
        keys = _Keys.of(client_id, ip)
        names = [keys.client_lock] + ([keys.pair_lock, f"score:client_ip:{keys.pair}"] if ip else [])
        await self._counters.clear(names)
        now = self._clock.now().timestamp()
        await self._budgets.refund(f"{BUDGET}:{keys.client}", self._limit, now, self._limit.burst)


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


def _refuse(end: float | None, now: float, why: str) -> None:
    if end is not None:
        raise RateLimited(
            f"{why}; retry in {_seconds(end - now)} s", retry_after=end - now, debug=why, cause="lock"
        )


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def build_client_guard(settings: Settings, guard: Guard, clock: Clock) -> ClientAuthGuard:
    """On the guard's stores: in this process, or in Redis shared by every replica (with its fallback)."""
    return ClientAuthGuard(
        guard.detector.store,
        guard.backend,
        guard.detector,
        clock,
        budget=settings.client_auth_failure_budget,
        refill_seconds=settings.client_auth_failure_refill_seconds,
        pair_threshold=settings.client_auth_lock_threshold,
        cooldown=float(settings.lock_cooldown_seconds),
        trusted_seconds=float(settings.client_auth_trusted_seconds),
    )
