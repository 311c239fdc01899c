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

from sqlalchemy import ColumnElement, Row, bindparam, delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.storage import sql_chain_events as chain_events
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
from app.storage.sql_jtis import delete_expired_jtis
from app.storage.writes import sqlite_write_lock, write_transaction


class SqlStore(SqlAuditLog):
    """Implements AuthStore, KeyStore, AuditLog and CheckpointStore on one async engine.

    ``hasher`` computes an audit entry's hash (app.audit.chain.entry_hash); it is handed in so that
    storage depends on nothing above it.
    """

    def __init__(self, engine: AsyncEngine, hasher: EntryHasher) -> None:
        self.engine = engine
        self.hasher = hasher
        self._write_lock = sqlite_write_lock(engine)  # app.storage.writes: why SQLite writers queue

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
        if before_commit is not None and self._write_lock is not None:
            # SQLite has one writer: nothing waits on another server while holding its lock.
            await before_commit()
            before_commit = None
        async with self._write() as conn:
            await conn.execute(
                _NONCE_INSERT,
                {
                    "nonce_hash": nonce_hash,
                    "client_id": client_id,
                    "oidc_nonce": oidc_nonce,
                    "issued_at": issued_at,
                    "expires_at": expires_at,
                },
            )
            if audit is not None:
                await append(conn, audit, self.hasher)
            if before_commit is not None:
                await before_commit()

    async def complete_sign_in(
        self, nonce_hash: str, client_id: str, now: datetime, refresh: RefreshRecord, audit: AuditRecord
    ) -> str | None:
        async with self._write() as conn:
            consumed = await conn.execute(
                NONCE_CONSUME, {"hash": nonce_hash, "client": client_id, "now": now, "consumed": now}
            )
            row = consumed.first()
            if row is None:
                raise NonceUnavailable(await self.why_nonce_unavailable(conn, nonce_hash, client_id, now))
            await conn.execute(REFRESH_INSERT, refresh_values(refresh))
            await append(conn, audit, self.hasher)
            oidc_nonce: str | None = row[0]
            return oidc_nonce

    @staticmethod
    async def why_nonce_unavailable(
        conn: AsyncConnection, nonce_hash: str, client_id: str, now: datetime
    ) -> NonceFailure:
        found = (
            await conn.execute(
                select(Nonce.client_id, Nonce.consumed_at, Nonce.expires_at).where(
                    Nonce.nonce_hash == nonce_hash
                )
            )
        ).first()
        if found is None:
            return "unknown"
        if found.consumed_at is not None:
            return "used"
        if found.expires_at <= now:
            return "expired"
        if found.client_id != client_id:
            return "other_client"
        return "used"  # lost a race between the UPDATE and this read

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
        async with self._write() as conn:
            old = await _rotate_current(conn, token_hash, client_id, new_hash, now)
            retried = old is None and retry is not None
            if old is None and retry is not None:
                old = await _rotate_again(conn, token_hash, client_id, new_hash, now, retry)
            if old is not None:
                if check is not None:
                    check(old)  # raising here rolls the rotation back: nothing is half-written
                new = _successor(old, new_hash, now)
                await conn.execute(REFRESH_INSERT, refresh_values(new))
                await append(conn, audit(new, retried), self.hasher)
                return new
            found = (
                await conn.execute(
                    select(*_REFRESH_COLUMNS, RefreshToken.successor_hash).where(
                        RefreshToken.token_hash == token_hash
                    )
                )
            ).first()
            if found is None:
                raise RefreshUnavailable("unknown")
            family = found.family_id
            if found.client_id != client_id:
                raise RefreshUnavailable("other_client", family)
            if found.revoked_at is not None:
                raise RefreshUnavailable("revoked", family)
            if found.rotated_at is not None:
                # Read after the failed UPDATEs: a retry admitted now means a concurrent one just won.
                lost_race = retry is not None and await _may_retry(conn, found, now, retry)
                raise RefreshUnavailable("superseded" if lost_race else "reused", family)
        raise RefreshUnavailable("expired", family)

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
            return True

    async def family_active(self, family_id: str, now: datetime) -> bool:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(RefreshToken.token_hash)
                    .where(
                        RefreshToken.family_id == family_id,
                        RefreshToken.revoked_at.is_(None),
                        RefreshToken.expires_at > now,
                    )
                    .limit(1)
                )
            ).first()
        return row is not None

    async def refresh_usable(self, token_hash: str, now: datetime) -> bool:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(RefreshToken.token_hash).where(
                        RefreshToken.token_hash == token_hash,
                        RefreshToken.rotated_at.is_(None),
                        RefreshToken.revoked_at.is_(None),
                        RefreshToken.expires_at > now,
                    )
                )
            ).first()
        return row is not None

    async def find_refresh(self, token_hash: str) -> RefreshRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(*_REFRESH_COLUMNS).where(RefreshToken.token_hash == token_hash))
            ).first()
        return _refresh_record(row) if row is not None else None

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


# Hot-path statements, built once: Core constructs with bind parameters compile once and are cached.
_NONCES = Base.metadata.tables[Nonce.__tablename__]
_NONCE_INSERT = insert(_NONCES)
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

_REFRESH_COLUMNS = (
    RefreshToken.token_hash,
    RefreshToken.family_id,
    RefreshToken.client_id,
    RefreshToken.subject,
    RefreshToken.address,
    RefreshToken.chain_id,
    RefreshToken.scope,
    RefreshToken.auth_time,
    RefreshToken.issued_at,
    RefreshToken.expires_at,
    RefreshToken.rotated_at,
    RefreshToken.revoked_at,
    RefreshToken.amr,
    RefreshToken.acr,
    RefreshToken.authorization_details,
    RefreshToken.dpop_jkt,
)


def _refresh_record(row: Row[*tuple[Any, ...]]) -> RefreshRecord:
    values = row._mapping
    return RefreshRecord(**{f.name: values[f.name] for f in dataclasses.fields(RefreshRecord)})


def refresh_values(record: RefreshRecord) -> dict[str, object]:
    # RefreshRecord's fields are the refresh_tokens columns a new row sets, one for one.
    return dataclasses.asdict(record)


async def _rotate_current(
    conn: AsyncConnection, token_hash: str, client_id: str, new_hash: str, now: datetime
) -> RefreshRecord | None:
    """Rotate the family's current token: one conditional UPDATE, so one of two racing requests wins."""
    row = (
        await conn.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.client_id == client_id,
                RefreshToken.rotated_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            )
            .values(rotated_at=now, successor_hash=new_hash)
            .returning(*_REFRESH_COLUMNS)
        )
    ).first()
    return _refresh_record(row) if row is not None else None


def _retry_conditions(
    table: Any, token_hash: str, client_id: str, now: datetime, retry: RetryRule
) -> list[ColumnElement[bool]]:
    """The presented token may be retried: this client's, live, rotated within the window (and bound)."""
    conditions = [
        table.c.token_hash == token_hash,
        table.c.client_id == client_id,
        table.c.revoked_at.is_(None),
        table.c.expires_at > now,
        table.c.rotated_at > retry.since,
    ]
    if retry.bound_only:
        conditions.append(table.c.dpop_jkt.is_not(None))
    return conditions


async def _rotate_again(
    conn: AsyncConnection, token_hash: str, client_id: str, new_hash: str, now: datetime, retry: RetryRule
) -> RefreshRecord | None:
    """FAPI 2.0 Security Profile 5.3.2.1 (10): the retry of a rotation whose response was lost.

    One conditional UPDATE decides it: the successor of the presented token is revoked only while nobody
    used or revoked it, so of two racing retries (or a retry racing the successor's own use) exactly one
    changes that row; the loser changes nothing. Then the presented token names its new successor.
    """
    previous = _REFRESH_TABLE.alias("previous")
    successor = (
        select(previous.c.successor_hash)
        .where(*_retry_conditions(previous, token_hash, client_id, now, retry))
        .scalar_subquery()
    )
    table = _REFRESH_TABLE
    superseded = (
        await conn.execute(
            update(table)
            .where(
                table.c.token_hash == successor,
                table.c.rotated_at.is_(None),
                table.c.revoked_at.is_(None),
            )
            .values(revoked_at=now, revoked_reason=RETRY_SUPERSEDED)
            .returning(table.c.token_hash)
        )
    ).first()
    if superseded is None:
        return None
    row = (
        await conn.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == token_hash, RefreshToken.successor_hash == superseded[0])
            .values(successor_hash=new_hash)
            .returning(*_REFRESH_COLUMNS)
        )
    ).first()
    return _refresh_record(row) if row is not None else None


async def _may_retry(
    conn: AsyncConnection, found: Row[*tuple[Any, ...]], now: datetime, retry: RetryRule
) -> bool:
    """Would the retry rule admit this rotated token now (its successor unused and unrevoked)?"""
    if found.successor_hash is None:
        return False
    previous = _REFRESH_TABLE.alias("previous")
    table = _REFRESH_TABLE
    row = (
        await conn.execute(
            select(table.c.token_hash).where(
                table.c.token_hash == found.successor_hash,
                table.c.rotated_at.is_(None),
                table.c.revoked_at.is_(None),
                select(previous.c.token_hash)
                .where(*_retry_conditions(previous, found.token_hash, found.client_id, now, retry))
                .exists(),
            )
        )
    ).first()
    return row is not None


def _successor(old: RefreshRecord, new_hash: str, now: datetime) -> RefreshRecord:
    return dataclasses.replace(
        old,
        token_hash=new_hash,
        issued_at=now,
        # The family keeps its absolute expiry: rotation never extends a session.
        expires_at=old.expires_at,
    )
