"""What we know about past sign-ins, read from the audit log (docs/AUDIT.md): no table of its own.

The audit log already holds every sign-in (``signin.succeeded``) and refusal (``signin.failed``) with its
actor (the subject DID; claimed, not proven, for refusals), its network (the ``ip`` column as
``PORTCULLIS_AUDIT_IP`` writes it: a /24 or /48, a full address or a keyed hash, here an opaque key) and
``data.device`` (a hash of the client's device cookie). Only the indexes on ``actor`` and ``type`` exist,
so each read is bounded by construction (docs/RISK.md, "History"):

- per subject: the ``actor`` index, so the work is the subject's own sign-in entries;
- per network: there is no index on ``ip`` or ``ts``, so only the newest ``tail`` entries of the log
  (a range of the primary key) are examined; with more traffic than ``tail`` entries per window,
  network counts cover only the newest part of the window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    distinct,
    func,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.audit.events import SIGNIN_FAILED, SIGNIN_SUCCEEDED, ts_ms
from app.storage.models import AuditEntry, Base

DEFAULT_REMEMBER = timedelta(days=365)
DEFAULT_TAIL = 1000

_LOG = Base.metadata.tables[AuditEntry.__tablename__]


@dataclass(frozen=True, slots=True)
class HistorySummary:
    """A subject's and a network's sign-in history as the risk engine reads it.

    ``first_seen`` is the subject's first successful sign-in still in the log (None: never). The known
    sets come from the subject's successful sign-ins. The four counts cover the window asked for.
    """

    first_seen: datetime | None
    known_networks: frozenset[str]
    known_devices: frozenset[str]
    successes_by_subject: int
    successes_by_network: int
    failures_by_subject: int
    failures_by_network: int


EMPTY_HISTORY = HistorySummary(None, frozenset(), frozenset(), 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Activity:
    """Sign-ins and refusals counted over a window."""

    successes: int
    failures: int


@dataclass(frozen=True, slots=True)
class KnownPlaces:
    """The networks and devices a subject has signed in from successfully."""

    networks: frozenset[str]
    devices: frozenset[str]


class SignInHistory(Protocol):
    async def summary(
        self, subject: str, network: str | None, device: str | None, now: datetime, window: timedelta
    ) -> HistorySummary:
        """Everything the risk engine needs about one sign-in, in one round trip.

        ``network`` and ``device`` are the ones of the sign-in being assessed: they are in the known sets
        if the subject ever signed in from them (within retention), however long ago.
        """
        ...

    async def first_seen(self, subject: str) -> datetime | None:
        """The subject's first successful sign-in still in the log."""
        ...

    async def known_places(self, subject: str, since: datetime) -> KnownPlaces:
        """Networks and devices of the subject's successful sign-ins since ``since``."""
        ...

    async def subject_activity(self, subject: str, since: datetime) -> Activity:
        """Sign-ins and refusals of ``subject`` (the claimed subject, for refusals) since ``since``."""
        ...

    async def network_activity(self, network: str, since: datetime) -> Activity:
        """Sign-ins and refusals from ``network`` since ``since``, among the newest log entries."""
        ...

    async def close(self) -> None:
        """Give back what the history holds (the app's shutdown)."""
        ...


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _device_pattern(device: str) -> str:
    """``data`` is canonical JSON (sorted keys, no whitespace), so the member appears verbatim."""
    member = '"device":' + json.dumps(device)
    escaped = member.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SqlSignInHistory:
    """``SignInHistory`` over the ``audit_log`` table, on SQLite and PostgreSQL.

    ``remember`` bounds how far back the known-set listing goes (a network or device of the sign-in being
    assessed is looked up without that bound); ``tail`` is how many of the newest log entries the
    per-network counts examine.
    """

    def __init__(
        self, engine: AsyncEngine, *, remember: timedelta = DEFAULT_REMEMBER, tail: int = DEFAULT_TAIL
    ) -> None:
        if tail < 1:
            raise ValueError("tail must be at least 1 entry")
        self.engine = engine
        self.remember = remember
        self.tail = tail
        # Statements are built once per instance (two expressions depend on the dialect); their compiled
        # form is cached, so a call costs the bind, one round trip and the database work.
        dialect = engine.dialect.name
        device = _device_expr(dialect)
        subject_rows = and_(
            _LOG.c.actor == bindparam("subject"), _LOG.c.type.in_([SIGNIN_SUCCEEDED, SIGNIN_FAILED])
        )
        # Successes are picked out with CASE among the subject's sign-in entries rather than by
        # ``type = 'signin.succeeded'`` in WHERE: given that equality, SQLite (without ANALYZE statistics)
        # may choose the ``type`` index, which spans every sign-in ever, over the ``actor`` index.
        succeeded, failed = _LOG.c.type == SIGNIN_SUCCEEDED, _LOG.c.type == SIGNIN_FAILED
        recent = _LOG.c.ts >= bindparam("since")
        remembered = and_(succeeded, _LOG.c.ts >= bindparam("horizon"))
        first_seen = func.min(case((succeeded, _LOG.c.ts)))
        activity = (_count(and_(succeeded, recent)), _count(and_(failed, recent)))
        known = (
            _distinct_list(dialect, case((remembered, _LOG.c.ip))),
            _distinct_list(dialect, case((remembered, device))),
        )
        # The newest ``tail`` entries: a primary-key range below the highest sequence number. The type is
        # again tested in CASE, not WHERE, so no planner is tempted by the ``type`` index.
        newest = and_(
            _LOG.c.seq > select(func.max(_LOG.c.seq)).scalar_subquery() - bindparam("tail", type_=Integer),
            _LOG.c.ip == bindparam("network"),
        )

        self._first_seen = select(first_seen).where(subject_rows)
        self._known = select(*known).where(subject_rows)
        self._subject_activity = select(*activity).where(subject_rows)
        self._network_activity = select(*activity).where(newest)

        # summary: one statement, one row: the subject's aggregates beside the network's. The network and
        # device being assessed are looked for among older entries too; within ``remember`` the listing
        # already has them, so only older entries pay for the text match.
        forgotten = and_(succeeded, _LOG.c.ts < bindparam("horizon"))
        asked_network = and_(forgotten, _LOG.c.ip == bindparam("network"))
        asked_device = and_(forgotten, _LOG.c.data.like(bindparam("device_pattern"), escape="\\"))
        subject_part = (
            select(
                first_seen,
                *activity,
                func.max(case((asked_network, 1), else_=0)),
                func.max(case((asked_device, 1), else_=0)),
                *known,
            )
            .where(subject_rows)
            .subquery("subject_part")
        )
        network_part = select(*activity).where(newest).subquery("network_part")
        self._summary_with_network = select(subject_part, network_part).select_from(
            subject_part.join(network_part, true())
        )
        self._summary_without_network = select(subject_part)

    async def summary(
        self, subject: str, network: str | None, device: str | None, now: datetime, window: timedelta
    ) -> HistorySummary:
        async with self.engine.connect() as conn:
            return await self.summary_on(conn, subject, network, device, now, window)

    async def summary_on(
        self,
        conn: AsyncConnection,
        subject: str,
        network: str | None,
        device: str | None,
        now: datetime,
        window: timedelta,
    ) -> HistorySummary:
        """``summary`` on a connection the caller already holds (e.g. inside the sign-in's own database
        visit), which saves the connection check-out and return that dominate its cost."""
        params = {
            "subject": subject,
            "network": network,
            # No device: the empty pattern, which only the empty string matches (data is at least "{}").
            "device_pattern": _device_pattern(device) if device is not None else "",
            "since": ts_ms(now - window),
            "horizon": ts_ms(now - self.remember),
            "tail": self.tail,
        }
        statement = self._summary_with_network if network is not None else self._summary_without_network
        row = (await conn.execute(statement, params)).one()
        first, ok, failed, network_seen, device_seen, networks, devices = row[:7]
        ok_network, failed_network = row[7:] if network is not None else (0, 0)
        known_networks = _strings(networks) | ({network} if network_seen and network is not None else set())
        known_devices = _strings(devices) | ({device} if device_seen and device is not None else set())
        return HistorySummary(
            first_seen=_parse_ts(first),
            known_networks=frozenset(known_networks),
            known_devices=frozenset(known_devices),
            successes_by_subject=int(ok),
            successes_by_network=int(ok_network),
            failures_by_subject=int(failed),
            failures_by_network=int(failed_network),
        )

    async def close(self) -> None:
        """Nothing is held between reads."""

    async def first_seen(self, subject: str) -> datetime | None:
        async with self.engine.connect() as conn:
            value = (await conn.execute(self._first_seen, {"subject": subject})).scalar_one()
        return _parse_ts(value)

    async def known_places(self, subject: str, since: datetime) -> KnownPlaces:
        params = {"subject": subject, "horizon": ts_ms(since)}
        async with self.engine.connect() as conn:
            networks, devices = (await conn.execute(self._known, params)).one()
        return KnownPlaces(networks=frozenset(_strings(networks)), devices=frozenset(_strings(devices)))

    async def subject_activity(self, subject: str, since: datetime) -> Activity:
        params = {"subject": subject, "since": ts_ms(since)}
        async with self.engine.connect() as conn:
            ok, failed = (await conn.execute(self._subject_activity, params)).one()
        return Activity(successes=int(ok), failures=int(failed))

    async def network_activity(self, network: str, since: datetime) -> Activity:
        params = {"network": network, "since": ts_ms(since), "tail": self.tail}
        async with self.engine.connect() as conn:
            ok, failed = (await conn.execute(self._network_activity, params)).one()
        return Activity(successes=int(ok), failures=int(failed))


def _device_expr(dialect: str) -> ColumnElement[str]:
    """``data.device`` as text."""
    if dialect == "sqlite":
        return func.json_extract(_LOG.c.data, "$.device", type_=String)
    if dialect == "postgresql":
        extracted: ColumnElement[str] = cast(_LOG.c.data, postgresql.JSON)["device"].astext
        return extracted
    raise ValueError(f"SqlSignInHistory: unsupported database dialect {dialect!r}")


def _distinct_list(dialect: str, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """The distinct values of ``value`` over the group, NULL included: a JSON array text on SQLite, an
    array on PostgreSQL (``_strings`` reads either)."""
    if dialect == "sqlite":
        return func.json_group_array(distinct(value), type_=String)
    return func.array_agg(distinct(value), type_=postgresql.ARRAY(String))


def _strings(values: str | list[str | None] | None) -> set[str]:
    if values is None:
        return set()
    items = json.loads(values) if isinstance(values, str) else values
    return {item for item in items if isinstance(item, str)}


def _parse_ts(value: str | None) -> datetime | None:
    """The log's RFC 3339 UTC millisecond timestamps (``2026-11-29T08:21:31.109Z``) as aware datetimes."""
    return None if value is None else datetime.fromisoformat(value)
