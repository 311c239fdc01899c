"""What we know about past sign-ins, read from the audit log (docs/AUDIT.md): no table of its own.

The audit log already holds every sign-in (``signin.succeeded``) and refusal (``signin.failed``) with its
actor (the subject DID; claimed, not proven, for refusals), its network (the ``ip`` column as
``PORTCULLIS_AUDIT_IP`` writes it: a /24 or /48, a full address or a keyed hash, here an opaque key) and
``data.device`` (a hash of the client's device cookie). Every read is bounded by an index
(docs/RISK.md, "History"):

- per subject: ``ix_audit_log_signin_subject``, a partial index on ``(actor, type, ts, ip)`` of the
  sign-in entries only: its first sign-in, its sign-ins and refusals within the window and whether it
  signed in from the network, from the index alone; for the device, the data of its successful
  sign-ins, newest first, until one names it;
- per network: ``ix_audit_log_signin_network``, a partial index on ``(ip, type, ts)`` of the sign-in
  entries only: its sign-ins and refusals within the window, from the index alone.

The window's counts stop at ``COUNT_CAP``.

The read is one statement, run by ``app.risk.readers.HeldReaders`` straight on the driver: one round trip
and nothing else, which is most of what made it cheap (docs/RISK.md, "Cost").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.audit.events import SIGNIN_FAILED, SIGNIN_SUCCEEDED, ts_ms
from app.risk.readers import DEFAULT_READERS, HeldReaders, PreparedRead
from app.storage.models import SIGN_IN_ENTRIES, AuditEntry, Base

_LOG = Base.metadata.tables[AuditEntry.__tablename__]

# Sign-ins and refusals in the window are counted up to this many (per subject, per network, each kind):
# the signals fire far below it, and a very busy network (a carrier NAT) or a flood of refusals claiming
# one subject cannot make every read long.
COUNT_CAP: Final = 1000

# The indexes (app/storage/models.py) that exist for this read only: their upkeep is its cost too.
INDEXES: Final = ("ix_audit_log_signin_subject", "ix_audit_log_signin_network")


@dataclass(frozen=True, slots=True)
class HistorySummary:
    """A subject's and a network's sign-in history as the risk engine reads it.

    ``first_seen`` is the subject's first successful sign-in still in the log (None: never).
    ``network_known`` / ``device_known``: the subject signed in successfully from the network / device of
    the sign-in being assessed, however long ago (within retention). The four counts cover the window.
    """

    first_seen: datetime | None
    network_known: bool
    device_known: bool
    successes_by_subject: int
    successes_by_network: int
    failures_by_subject: int
    failures_by_network: int


EMPTY_HISTORY = HistorySummary(None, False, False, 0, 0, 0, 0)


class SignInHistory(Protocol):
    async def summary(
        self, subject: str, network: str | None, device: str | None, now: datetime, window: timedelta
    ) -> HistorySummary:
        """Everything the risk engine needs about one sign-in, in one round trip."""
        ...

    async def close(self) -> None:
        """Give back what the history holds (the app's shutdown)."""
        ...


def device_member(device: str) -> str:
    """``data`` is canonical JSON (sorted keys, no whitespace), so a device appears as this exact text."""
    return '"device":' + json.dumps(device)


# Constants as SQL literals: the statement's parameters are then only the values of the call.
_ZERO: ColumnElement[int] = literal_column("0")
_ONE: ColumnElement[int] = literal_column("1")


def _literal(name: str) -> ColumnElement[str]:
    """An event type as an SQL string literal (the names are plain ASCII without quotes)."""
    assert name.isascii() and "'" not in name
    return literal_column(f"'{name}'")


def _contains(dialect: str, text: ColumnElement[str], part: ColumnElement[str]) -> ColumnElement[bool]:
    """Plain substring test (no pattern characters to escape, case-sensitive on both backends)."""
    if dialect == "sqlite":
        return func.instr(text, part) > _ZERO
    if dialect == "postgresql":
        return func.strpos(text, part) > _ZERO
    raise ValueError(f"SqlSignInHistory: unsupported database dialect {dialect!r}")


def summary_statement(dialect: Dialect, count_cap: int = COUNT_CAP) -> Select[Any]:
    """The one statement behind ``summary``: one row of small subqueries, each bounded by an index.

    The event types are SQL literals, not parameters, and every part repeats the partial indexes' own
    condition, so that both SQLite and PostgreSQL (whose generic plans cannot see parameter values) can
    prove those indexes apply.
    """
    sign_ins = _LOG.c.type.in_([_literal(name) for name in SIGN_IN_ENTRIES])
    succeeded, failed = _LOG.c.type == _literal(SIGNIN_SUCCEEDED), _LOG.c.type == _literal(SIGNIN_FAILED)
    recent = _LOG.c.ts >= bindparam("since")
    # ix_audit_log_signin_subject (actor, type, ts, ip) and ix_audit_log_signin_network (ip, type, ts):
    # each part is a range of one of them; the two "seen" parts stop at the first entry that matches.
    subject = and_(_LOG.c.actor == bindparam("subject"), sign_ins)
    network = and_(_LOG.c.ip == bindparam("network"), sign_ins)
    first_seen = select(func.min(_LOG.c.ts)).where(subject, succeeded).scalar_subquery()
    # Through the subject's index, whose entries carry the network: written as ``coalesce(ip, '') = :network``
    # (not true for NULL either) so that the network's index, which would read every sign-in ever made
    # from a busy network, is not a candidate for it.
    network_seen = _any(
        subject, succeeded, func.coalesce(_LOG.c.ip, literal_column("''")) == bindparam("network")
    )
    # The device is only in the entries' data, the one part that reads the table's rows: the subject's
    # successful sign-ins, newest first (the likeliest to name the device in use), until one names it.
    device_seen = _any(
        subject,
        succeeded,
        _contains(dialect.name, _LOG.c.data, bindparam("device_member")),
        newest_first=True,
    )
    return select(
        first_seen,
        _at_most(count_cap, subject, succeeded, recent),
        _at_most(count_cap, subject, failed, recent),
        network_seen,
        _at_most(count_cap, network, succeeded, recent),
        _at_most(count_cap, network, failed, recent),
        device_seen,
    )


def _any(*conditions: ColumnElement[bool], newest_first: bool = False) -> ColumnElement[int]:
    """1 if an entry meets ``conditions``, else NULL."""
    first = select(_ONE).where(*conditions)
    if newest_first:
        first = first.order_by(_LOG.c.ts.desc())
    return first.limit(_ONE).scalar_subquery()


def _at_most(cap: int, *conditions: ColumnElement[bool]) -> ColumnElement[int]:
    """How many entries meet ``conditions``, counting no further than ``cap``."""
    entries = select(_ONE.label("entry")).where(*conditions).limit(literal_column(str(cap))).subquery()
    return select(func.count()).select_from(entries).scalar_subquery()


class SqlSignInHistory:
    """``SignInHistory`` over the ``audit_log`` table, on SQLite and PostgreSQL.

    ``readers`` bounds how many of the engine's connections it holds for its reads (opened on first
    use, given back by ``close``); ``count_cap`` how far the window's sign-ins and refusals are counted.
    """

    def __init__(
        self, engine: AsyncEngine, *, readers: int = DEFAULT_READERS, count_cap: int = COUNT_CAP
    ) -> None:
        if count_cap < 1:
            raise ValueError("count_cap must be at least 1")
        self.engine = engine
        self._read = PreparedRead(summary_statement(engine.dialect, count_cap), engine.dialect)
        self._readers = HeldReaders(engine, readers)

    async def summary(
        self, subject: str, network: str | None, device: str | None, now: datetime, window: timedelta
    ) -> HistorySummary:
        params = _params(subject, network, device, now, window)
        return _summary(await self._readers.fetch_one(self._read, params))

    async def summary_on(
        self,
        conn: AsyncConnection,
        subject: str,
        network: str | None,
        device: str | None,
        now: datetime,
        window: timedelta,
    ) -> HistorySummary:
        """``summary`` on a connection the caller already holds (it then sees what the caller's
        transaction wrote)."""
        driver = (await conn.get_raw_connection()).driver_connection
        params = _params(subject, network, device, now, window)
        return _summary(await self._read.fetch_one(driver, params))

    async def close(self) -> None:
        await self._readers.close()


def _params(
    subject: str, network: str | None, device: str | None, now: datetime, window: timedelta
) -> dict[str, Any]:
    return {
        "subject": subject,
        # None (no client address, no device cookie) compares as NULL: matches nothing, counts 0.
        "network": network,
        "device_member": device_member(device) if device is not None else None,
        "since": ts_ms(now - window),
    }


def _summary(row: Any) -> HistorySummary:
    first, ok, failed, network_seen, ok_network, failed_network, device_seen = row
    return HistorySummary(
        first_seen=None if first is None else datetime.fromisoformat(first),
        network_known=bool(network_seen),
        device_known=bool(device_seen),
        successes_by_subject=int(ok),
        successes_by_network=int(ok_network),
        failures_by_subject=int(failed),
        failures_by_network=int(failed_network),
    )
