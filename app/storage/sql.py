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

from sqlalchemy import Row, bindparam, delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.storage.models import Base, Nonce, RefreshToken, SigningKey
from app.storage.records import (
    AuditRecord,
    KeyRecord,
    NonceFailure,
    NonceUnavailable,
    RefreshRecord,
    RefreshUnavailable,
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
        audit: Callable[[RefreshRecord], AuditRecord],
        check: Callable[[RefreshRecord], None] | None = None,
    ) -> RefreshRecord:
        async with self._write() as conn:
            rotated = (
                await conn.execute(
                    update(RefreshToken)
                    .where(
                        RefreshToken.token_hash == token_hash,
                        RefreshToken.client_id == client_id,
                        RefreshToken.rotated_at.is_(None),
                        RefreshToken.revoked_at.is_(None),
                        RefreshToken.expires_at > now,
                    )
                    .values(rotated_at=now)
                    .returning(*_REFRESH_COLUMNS)
                )
            ).first()
            if rotated is not None:
                old = _refresh_record(rotated)
                if check is not None:
                    check(old)  # raising here rolls the rotation back: nothing is half-written
                new = RefreshRecord(
                    token_hash=new_hash,
                    family_id=old.family_id,
                    client_id=old.client_id,
                    subject=old.subject,
                    address=old.address,
                    chain_id=old.chain_id,
                    scope=old.scope,
                    auth_time=old.auth_time,
                    issued_at=now,
                    # The family keeps its absolute expiry: rotation never extends a session.
                    expires_at=old.expires_at,
                    amr=old.amr,
                    acr=old.acr,
                    authorization_details=old.authorization_details,
                    dpop_jkt=old.dpop_jkt,
                )
                await conn.execute(REFRESH_INSERT, refresh_values(new))
                await append(conn, audit(new), self.hasher)
                return new
            found = (
                await conn.execute(select(*_REFRESH_COLUMNS).where(RefreshToken.token_hash == token_hash))
            ).first()
        if found is None:
            raise RefreshUnavailable("unknown")
        record = _refresh_record(found)
        if found.client_id != client_id:
            raise RefreshUnavailable("other_client", record.family_id)
        if found.revoked_at is not None:
            raise RefreshUnavailable("revoked", record.family_id)
        if found.rotated_at is not None:
            raise RefreshUnavailable("reused", record.family_id)
        raise RefreshUnavailable("expired", record.family_id)

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
            result = await conn.execute(
                update(RefreshToken)
                .where(RefreshToken.subject == subject, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason[:64])
            )
            await append(conn, audit, self.hasher)
            return int(result.rowcount)  # type: ignore[attr-defined]

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
REFRESH_INSERT = insert(Base.metadata.tables[RefreshToken.__tablename__])

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
