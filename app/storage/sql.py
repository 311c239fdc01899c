"""SQL implementation of the store protocols, for SQLite and PostgreSQL alike.

Every single-use step is one conditional UPDATE ... RETURNING inside one transaction, so two concurrent
requests can never both consume the same nonce or rotate the same refresh token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.metrics import Metrics
from app.storage import changes
from app.storage import sql_chain_events as chain_events
from app.storage.db import Timeouts
from app.storage.group_commit import GroupCommit
from app.storage.hot import Body, HotDriver, Sql, Step, create_driver
from app.storage.models import Base, Nonce, RefreshToken, SigningKey
from app.storage.records import (
    AuditRecord,
    ChainEventKey,
    KeyRecord,
    NonceFailure,
    NonceUnavailable,
    RefreshRecord,
    RefreshUnavailable,
    RetryRule,
    SubjectRevocation,
)
from app.storage.sql_audit import EntryHasher, SqlAuditLog, append
from app.storage.sql_delegations import revoke_subject_delegations
from app.storage.sql_jtis import delete_expired_jtis
from app.storage.writes import sqlite_write_lock, write_transaction


class SqlStore(SqlAuditLog):
    """Implements AuthStore, KeyStore, AuditLog and CheckpointStore on one async engine.

    ``hasher`` computes an audit entry's hash (app.audit.chain.entry_hash); it is handed in so that
    storage depends on nothing above it.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        hasher: EntryHasher,
        timeouts: Timeouts | None = None,
        *,
        batch_max: int | None = None,
        batch_wait: float | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.hasher = hasher
        self._write_lock = sqlite_write_lock(engine)  # app.storage.writes: why SQLite writers queue
        # The hot path (app.storage.hot): the driver straight, audited writes group-committed.
        url = engine.url.render_as_string(hide_password=False)
        self.hot: HotDriver = create_driver(url, timeouts or Timeouts(), self._write_lock)
        batching: dict[str, Any] = {}
        if batch_max is not None:
            batching["max_batch"] = batch_max
        if batch_wait is not None:
            batching["max_wait"] = batch_wait
        self.group = GroupCommit(self.hot, engine.dialect, hasher, **batching, metrics=metrics)
        self.sql = HotStatements(engine.dialect)

    async def close(self) -> None:
        """Commit what is queued and give back the hot path's connections (the engine is the caller's)."""
        await self.group.close()
        await self.hot.close()

    async def record(self, audit: AuditRecord) -> int:
        """Append one entry, group-committed with whatever else is written (app.storage.group_commit)."""
        seq: int = await self.group.submit(None, audit)
        return seq

    @property
    def write_lock(self) -> asyncio.Lock | None:
        return self._write_lock

    def transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction queued like this store's own (for stores that share its engine)."""
        return self._write()

    def _write(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return write_transaction(self.engine, self._write_lock)

    # -- nonces ---------------------------------------------------------------------------------------------

    async def issue_nonce(
        self,
        nonce_hash: str,
        client_id: str,
        oidc_nonce: str | None,
        issued_at: datetime,
        expires_at: datetime,
        audit: AuditRecord | None = None,
        before_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if before_commit is not None:
            # The guard admits the request before it joins a batch: no batch waits on another server.
            await before_commit()
        values = {
            "nonce_hash": nonce_hash,
            "client_id": client_id,
            "oidc_nonce": oidc_nonce,
            "issued_at": issued_at,
            "expires_at": expires_at,
        }
        await self.group.submit(lambda: self._one(Step(self.sql.nonce_insert, values)), audit)

    @staticmethod
    def _one(step: Step) -> Body[None]:
        yield step

    async def complete_sign_in(
        self, nonce_hash: str, client_id: str, now: datetime, refresh: RefreshRecord, audit: AuditRecord
    ) -> str | None:
        sql = self.sql

        def body() -> Body[str | None]:
            consumed = yield Step(
                sql.nonce_consume, {"hash": nonce_hash, "client": client_id, "now": now, "consumed": now}
            )
            row = consumed.first()
            if row is None:
                found = (yield Step(sql.nonce_find, {"hash": nonce_hash})).first()
                raise NonceUnavailable(nonce_failure(found, client_id, now))
            yield Step(sql.refresh_insert, refresh_values(refresh))
            oidc_nonce: str | None = row[0]
            return oidc_nonce

        result: str | None = await self.group.submit(body, audit)
        return result

    @staticmethod
    async def why_nonce_unavailable(
        conn: AsyncConnection, nonce_hash: str, client_id: str, now: datetime
    ) -> NonceFailure:
        found = (await conn.execute(_NONCE_FIND, {"hash": nonce_hash})).first()
        return nonce_failure(None if found is None else tuple(found), client_id, now)

    # -- refresh tokens -------------------------------------------------------------------------------------

    async def rotate_refresh(
        self,
        token_hash: str,
        client_id: str,
        new_hash: str,
        now: datetime,
        audit: Callable[[RefreshRecord, bool], AuditRecord],
        check: Callable[[RefreshRecord], None] | None = None,
        retry: RetryRule | None = None,
    ) -> RefreshRecord:
        sql = self.sql

        def body() -> Body[tuple[RefreshRecord, bool]]:
            key = {"hash": token_hash, "client": client_id, "now": now}
            row = (yield Step(sql.rotate_current, {**key, "rotated": now, "successor": new_hash})).first()
            old = None if row is None else _record(row)
            retried = old is None and retry is not None
            if old is None and retry is not None:
                old = yield from _rotate_again(sql, key, new_hash, retry)
            if old is not None:
                if check is not None:
                    check(old)  # raising here rolls the rotation back: nothing is half-written
                new = _successor(old, new_hash, now)
                yield Step(sql.refresh_insert, refresh_values(new))
                return new, retried
            found = (yield Step(sql.refresh_find_with_successor, {"hash": token_hash})).first()
            if found is None:
                raise RefreshUnavailable("unknown")
            record, (revoked_at, rotated_at, successor_hash) = _record(found[:-3]), found[-3:]
            family = record.family_id
            if record.client_id != client_id:
                raise RefreshUnavailable("other_client", family)
            if revoked_at is not None:
                raise RefreshUnavailable("revoked", family)
            if rotated_at is not None:
                # Read after the failed UPDATEs: a retry admitted now means a concurrent one just won.
                lost_race = False
                if retry is not None and successor_hash is not None:
                    lost_race = yield from _may_retry(sql, record, successor_hash, now, retry)
                raise RefreshUnavailable("superseded" if lost_race else "reused", family)
            raise RefreshUnavailable("expired", family)

        def entry(value: tuple[RefreshRecord, bool]) -> AuditRecord:
            return audit(*value)

        rotated: tuple[RefreshRecord, bool] = await self.group.submit(body, entry)
        return rotated[0]

    async def revoke_family(self, family_id: str, now: datetime, reason: str, audit: AuditRecord) -> int:
        async with self._write() as conn:
            result = await conn.execute(
                update(RefreshToken)
                .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason)
            )
            await append(conn, audit, self.hasher)
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def revoke_subject(self, subject: str, now: datetime, reason: str, audit: AuditRecord) -> int:
        async with self._write() as conn:
            return await self._revoke_subject(conn, SubjectRevocation(subject, now, reason, audit))

    async def _revoke_subject(self, conn: AsyncConnection, revocation: SubjectRevocation) -> int:
        result = await conn.execute(
            update(RefreshToken)
            .where(RefreshToken.subject == revocation.subject, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=revocation.now, revoked_reason=revocation.reason[:64])
        )
        await append(conn, revocation.audit, self.hasher)
        if revocation.delegation_audit is not None:
            await revoke_subject_delegations(
                conn,
                revocation.subject,
                revocation.now,
                revocation.reason,
                revocation.delegation_audit,
                self.hasher,
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def record_chain_event(
        self, key: ChainEventKey, audit: AuditRecord, revocation: SubjectRevocation | None = None
    ) -> bool:
        async with self._write() as conn:
            if not await chain_events.claim(conn, key):
                return False
            await append(conn, audit, self.hasher)
            if revocation is not None:
                await self._revoke_subject(conn, revocation)
            # every replica drops its cached decision for the account, whether or not its follower saw it
            await changes.announce(conn, changes.CHAIN, changes.chain_detail(key.chain_id, key.account))
            return True

    async def family_active(self, family_id: str, now: datetime) -> bool:
        step = Step(self.sql.family_active, {"family": family_id, "now": now})
        return (await self.hot.read(_first_row(step))) is not None

    async def refresh_usable(self, token_hash: str, now: datetime) -> bool:
        step = Step(self.sql.refresh_usable, {"hash": token_hash, "now": now})
        return (await self.hot.read(_first_row(step))) is not None

    async def find_refresh(self, token_hash: str) -> RefreshRecord | None:
        row = await self.hot.read(_first_row(Step(self.sql.refresh_find, {"hash": token_hash})))
        return None if row is None else _record(row)

    async def purge_expired(self, now: datetime) -> int:
        """Delete nonces, refresh tokens and used JWT ids past expiry (none can be used or reused)."""
        async with self._write() as conn:
            nonces = await conn.execute(delete(Nonce).where(Nonce.expires_at <= now))
            tokens = await conn.execute(delete(RefreshToken).where(RefreshToken.expires_at <= now))
            jtis = await delete_expired_jtis(conn, now)
            return int(nonces.rowcount) + int(tokens.rowcount) + jtis  # type: ignore[attr-defined]

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # -- signing keys ---------------------------------------------------------------------------------------

    async def list_keys(self) -> list[KeyRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(SigningKey).order_by(SigningKey.created_at))).all()
        return [
            KeyRecord(
                kid=r.kid,
                alg=r.alg,
                public_jwk=r.public_jwk,
                private_key_encrypted=r.private_key_encrypted,
                created_at=r.created_at,
                retired_at=r.retired_at,
                publish_until=r.publish_until,
                activates_at=r.activates_at,
            )
            for r in rows
        ]

    async def activate_key(
        self, key: KeyRecord, at: datetime, publish_until: datetime, audit: AuditRecord
    ) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(SigningKey)
                .where(SigningKey.retired_at.is_(None))
                .values(retired_at=at, publish_until=publish_until)
            )
            await conn.execute(insert(SigningKey).values(**key.new_row(), activates_at=key.activates_at))
            await append(conn, audit, self.hasher)
            await changes.announce(conn, changes.KEYS)  # every process reloads its key ring at COMMIT


# Hot-path statements, built once: Core constructs with bind parameters compile once and are cached.
_NONCES = Base.metadata.tables[Nonce.__tablename__]
_NONCE_INSERT = insert(_NONCES)
_NONCE_COLUMNS = ("nonce_hash", "client_id", "oidc_nonce", "issued_at", "expires_at")
NONCE_CONSUME = (
    update(_NONCES)
    .where(
        _NONCES.c.nonce_hash == bindparam("hash"),
        _NONCES.c.client_id == bindparam("client"),
        _NONCES.c.consumed_at.is_(None),
        _NONCES.c.expires_at > bindparam("now"),
    )
    .values(consumed_at=bindparam("consumed"))
    .returning(_NONCES.c.oidc_nonce)
)
_REFRESH_TABLE = Base.metadata.tables[RefreshToken.__tablename__]
REFRESH_INSERT = insert(_REFRESH_TABLE)
RETRY_SUPERSEDED = "superseded_by_retry"  # revoked_reason of a successor whose predecessor was retried


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(RefreshRecord))


def _record(row: tuple[Any, ...]) -> RefreshRecord:
    return RefreshRecord(*row)


def nonce_failure(found: tuple[Any, ...] | None, client_id: str, now: datetime) -> NonceFailure:
    """Why a nonce could not be consumed, from its row (client_id, consumed_at, expires_at) or None."""
    if found is None:
        return "unknown"
    owner, consumed_at, expires_at = found
    if consumed_at is not None:
        return "used"
    if expires_at <= now:
        return "expired"
    if owner != client_id:
        return "other_client"
    return "used"  # lost a race between the UPDATE and this read


def _first_row(step: Step) -> Body[tuple[Any, ...] | None]:
    return (yield step).first()


_NONCE_FIND = select(_NONCES.c.client_id, _NONCES.c.consumed_at, _NONCES.c.expires_at).where(
    _NONCES.c.nonce_hash == bindparam("hash")
)


def _retry_conditions(table: Any, retry: RetryRule) -> list[ColumnElement[bool]]:
    """The presented token may be retried: this client's, live, rotated within the window (and bound)."""
    conditions = [
        table.c.token_hash == bindparam("hash"),
        table.c.client_id == bindparam("client"),
        table.c.revoked_at.is_(None),
        table.c.expires_at > bindparam("now"),
        table.c.rotated_at > bindparam("since"),
    ]
    if retry.bound_only:
        conditions.append(table.c.dpop_jkt.is_not(None))
    return conditions


class HotStatements:
    """The store's hot-path statements, compiled once for the engine's dialect (app.storage.hot.Sql)."""

    def __init__(self, dialect: Any) -> None:
        t = _REFRESH_TABLE
        self.nonce_insert = Sql(_NONCE_INSERT, dialect, _NONCE_COLUMNS)
        self.nonce_consume = Sql(NONCE_CONSUME, dialect)
        self.nonce_find = Sql(_NONCE_FIND, dialect)
        self.refresh_insert = Sql(REFRESH_INSERT, dialect, _RECORD_FIELDS)
        columns = [t.c[name] for name in _RECORD_FIELDS]
        self.refresh_find = Sql(select(*columns).where(t.c.token_hash == bindparam("hash")), dialect)
        self.refresh_find_with_successor = Sql(
            select(*columns, t.c.revoked_at, t.c.rotated_at, t.c.successor_hash).where(
                t.c.token_hash == bindparam("hash")
            ),
            dialect,
        )
        self.refresh_usable = Sql(
            select(t.c.token_hash).where(
                t.c.token_hash == bindparam("hash"),
                t.c.rotated_at.is_(None),
                t.c.revoked_at.is_(None),
                t.c.expires_at > bindparam("now"),
            ),
            dialect,
        )
        self.family_active = Sql(
            select(t.c.token_hash)
            .where(
                t.c.family_id == bindparam("family"),
                t.c.revoked_at.is_(None),
                t.c.expires_at > bindparam("now"),
            )
            .limit(1),
            dialect,
        )
        # Rotate the family's current token: one conditional UPDATE, so one of two racing requests wins.
        self.rotate_current = Sql(
            update(t)
            .where(
                t.c.token_hash == bindparam("hash"),
                t.c.client_id == bindparam("client"),
                t.c.rotated_at.is_(None),
                t.c.revoked_at.is_(None),
                t.c.expires_at > bindparam("now"),
            )
            .values(rotated_at=bindparam("rotated"), successor_hash=bindparam("successor"))
            .returning(*columns),
            dialect,
        )
        self.retry: dict[bool, tuple[Sql, Sql]] = {}
        for bound_only in (False, True):
            rule = RetryRule(since=datetime.min, bound_only=bound_only)
            previous = t.alias("previous")
            successor = select(previous.c.successor_hash).where(*_retry_conditions(previous, rule))
            supersede = Sql(
                update(t)
                .where(
                    t.c.token_hash == successor.scalar_subquery(),
                    t.c.rotated_at.is_(None),
                    t.c.revoked_at.is_(None),
                )
                .values(revoked_at=bindparam("revoked"), revoked_reason=RETRY_SUPERSEDED)
                .returning(t.c.token_hash),
                dialect,
            )
            may = Sql(
                select(t.c.token_hash).where(
                    t.c.token_hash == bindparam("successor"),
                    t.c.rotated_at.is_(None),
                    t.c.revoked_at.is_(None),
                    select(previous.c.token_hash).where(*_retry_conditions(previous, rule)).exists(),
                ),
                dialect,
            )
            self.retry[bound_only] = (supersede, may)
        self.rename_successor = Sql(
            update(t)
            .where(t.c.token_hash == bindparam("hash"), t.c.successor_hash == bindparam("superseded"))
            .values(successor_hash=bindparam("successor"))
            .returning(*columns),
            dialect,
        )


def _rotate_again(
    sql: HotStatements, key: dict[str, Any], new_hash: str, retry: RetryRule
) -> Body[RefreshRecord | None]:
    """FAPI 2.0 Security Profile 5.3.2.1 (10): the retry of a rotation whose response was lost.

    One conditional UPDATE decides it: the successor of the presented token is revoked only while nobody
    used or revoked it, so of two racing retries (or a retry racing the successor's own use) exactly one
    changes that row; the loser changes nothing. Then the presented token names its new successor.
    """
    supersede, _ = sql.retry[retry.bound_only]
    superseded = (yield Step(supersede, {**key, "since": retry.since, "revoked": key["now"]})).first()
    if superseded is None:
        return None
    params = {"hash": key["hash"], "superseded": superseded[0], "successor": new_hash}
    row = (yield Step(sql.rename_successor, params)).first()
    return None if row is None else _record(row)


def _may_retry(
    sql: HotStatements, found: RefreshRecord, successor_hash: str, now: datetime, retry: RetryRule
) -> Body[bool]:
    """Would the retry rule admit this rotated token now (its successor unused and unrevoked)?"""
    _, may = sql.retry[retry.bound_only]
    params = {
        "successor": successor_hash,
        "hash": found.token_hash,
        "client": found.client_id,
        "now": now,
        "since": retry.since,
    }
    return (yield Step(may, params)).first() is not None


def refresh_values(record: RefreshRecord) -> dict[str, object]:
    # RefreshRecord's fields are the refresh_tokens columns a new row sets, one for one.
    return dataclasses.asdict(record)


def _successor(old: RefreshRecord, new_hash: str, now: datetime) -> RefreshRecord:
    return dataclasses.replace(
        old,
        token_hash=new_hash,
        issued_at=now,
        # The family keeps its absolute expiry: rotation never extends a session.
        expires_at=old.expires_at,
    )
