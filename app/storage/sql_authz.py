"""SQL implementation of ``AuthzStore`` (app.storage.authz_records), for SQLite and PostgreSQL alike.

Each single-use step (a ``request_uri``, an interaction's SIWE nonce, consent, a code) is one conditional
UPDATE ... RETURNING in one transaction together with what it causes and its audit entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.storage.authz_records import (
    AuthzRequestRecord,
    CodeRecord,
    CodeUnavailable,
    Interaction,
    InteractionUnavailable,
    RequestUriFailure,
    RequestUriUnavailable,
)
from app.storage.models import Nonce
from app.storage.models_authz import AuthorizationCode, AuthorizationRequest
from app.storage.records import AuditRecord, NonceUnavailable, RefreshRecord
from app.storage.sql import NONCE_CONSUME, REFRESH_INSERT, SqlStore, refresh_values
from app.storage.sql_audit import EntryHasher, append

_REQUEST_COLUMNS = tuple(
    getattr(AuthorizationRequest, f.name) for f in dataclasses.fields(AuthzRequestRecord)
)
_CODE_COLUMNS = tuple(getattr(AuthorizationCode, f.name) for f in dataclasses.fields(CodeRecord))


def _request(row: Row[Any]) -> AuthzRequestRecord:
    return AuthzRequestRecord(**dict(row._mapping))


def _code(row: Row[Any]) -> CodeRecord:
    return CodeRecord(**dict(row._mapping))


class SqlAuthzStore:
    """Shares the engine, audit hasher and (SQLite) writer queue of the main ``SqlStore``."""

    def __init__(self, engine: AsyncEngine, hasher: EntryHasher, write: Callable[[], Any]) -> None:
        self.engine = engine
        self.hasher = hasher
        self._write: Callable[[], AbstractAsyncContextManager[AsyncConnection]] = write

    @classmethod
    def beside(cls, store: SqlStore) -> SqlAuthzStore:
        return cls(store.engine, store.hasher, store.transaction)

    async def push(self, request: AuthzRequestRecord, request_uri_hash: str, audit: AuditRecord) -> None:
        async with self._write() as conn:
            await conn.execute(
                insert(AuthorizationRequest).values(
                    **dataclasses.asdict(request), request_uri_hash=request_uri_hash
                )
            )
            await append(conn, audit, self.hasher)

    async def take_pushed(
        self, request_uri_hash: str, client_id: str, now: datetime, interaction: Interaction
    ) -> AuthzRequestRecord:
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(AuthorizationRequest)
                    .where(
                        AuthorizationRequest.request_uri_hash == request_uri_hash,
                        AuthorizationRequest.client_id == client_id,
                        AuthorizationRequest.started_at.is_(None),
                        AuthorizationRequest.expires_at > now,
                    )
                    .values(
                        started_at=now,
                        expires_at=interaction.expires_at,
                        interaction_hash=interaction.interaction_hash,
                        browser_hash=interaction.browser_hash,
                        siwe_nonce_hash=interaction.nonce_hash,
                    )
                    .returning(*_REQUEST_COLUMNS)
                )
            ).first()
            if row is None:
                raise RequestUriUnavailable(
                    await self._why_request_uri(conn, request_uri_hash, client_id, now)
                )
            record = _request(row)
            await self._issue_nonce(conn, interaction, client_id, now)
            return record

    @staticmethod
    async def _why_request_uri(
        conn: AsyncConnection, request_uri_hash: str, client_id: str, now: datetime
    ) -> RequestUriFailure:
        found = (
            await conn.execute(
                select(
                    AuthorizationRequest.client_id,
                    AuthorizationRequest.started_at,
                    AuthorizationRequest.expires_at,
                ).where(AuthorizationRequest.request_uri_hash == request_uri_hash)
            )
        ).first()
        if found is None:
            return "unknown"
        if found.client_id != client_id:
            return "other_client"
        if found.started_at is not None:
            return "used"
        return "expired" if found.expires_at <= now else "used"

    @staticmethod
    async def _issue_nonce(
        conn: AsyncConnection, interaction: Interaction, client_id: str, now: datetime
    ) -> None:
        await conn.execute(
            insert(Nonce).values(
                nonce_hash=interaction.nonce_hash,
                client_id=client_id,
                oidc_nonce=None,
                issued_at=now,
                expires_at=interaction.expires_at,
            )
        )

    async def start(self, request: AuthzRequestRecord, interaction: Interaction) -> None:
        async with self._write() as conn:
            await conn.execute(
                insert(AuthorizationRequest).values(
                    **dataclasses.asdict(request), interaction_hash=interaction.interaction_hash
                )
            )
            await self._issue_nonce(conn, interaction, request.client_id, request.created_at)

    async def find_interaction(self, interaction_hash: str) -> AuthzRequestRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*_REQUEST_COLUMNS).where(AuthorizationRequest.interaction_hash == interaction_hash)
                )
            ).first()
        return None if row is None else _request(row)

    async def authenticate(
        self, request_id: str, nonce_hash: str, now: datetime, grant: str, audit: AuditRecord
    ) -> None:
        async with self._write() as conn:
            updated = await conn.execute(
                update(AuthorizationRequest)
                .where(
                    AuthorizationRequest.request_id == request_id,
                    AuthorizationRequest.authenticated_at.is_(None),
                    AuthorizationRequest.finished_at.is_(None),
                    AuthorizationRequest.expires_at > now,
                )
                .values(authenticated_at=now, grant=grant)
                .returning(AuthorizationRequest.client_id)
            )
            row = updated.first()
            if row is None:
                raise InteractionUnavailable("authenticated")
            consumed = await conn.execute(
                NONCE_CONSUME, {"hash": nonce_hash, "client": row.client_id, "now": now, "consumed": now}
            )
            if consumed.first() is None:
                why = await SqlStore.why_nonce_unavailable(conn, nonce_hash, row.client_id, now)
                raise NonceUnavailable(why)  # rolls the UPDATE above back
            await append(conn, audit, self.hasher)

    async def finish(
        self, request_id: str, now: datetime, code: CodeRecord | None, audit: AuditRecord
    ) -> None:
        async with self._write() as conn:
            updated = await conn.execute(
                update(AuthorizationRequest)
                .where(
                    AuthorizationRequest.request_id == request_id,
                    AuthorizationRequest.authenticated_at.is_not(None),
                    AuthorizationRequest.finished_at.is_(None),
                    AuthorizationRequest.expires_at > now,
                )
                .values(finished_at=now, grant=None)
            )
            if not updated.rowcount:  # type: ignore[attr-defined]
                raise InteractionUnavailable("finished")
            if code is not None:
                await conn.execute(insert(AuthorizationCode).values(**dataclasses.asdict(code)))
            await append(conn, audit, self.hasher)

    async def abandon(self, request_id: str, now: datetime, audit: AuditRecord) -> None:
        async with self._write() as conn:
            updated = await conn.execute(
                update(AuthorizationRequest)
                .where(
                    AuthorizationRequest.request_id == request_id,
                    AuthorizationRequest.finished_at.is_(None),
                )
                .values(finished_at=now, grant=None)
            )
            if not updated.rowcount:  # type: ignore[attr-defined]
                raise InteractionUnavailable("finished")
            await append(conn, audit, self.hasher)

    async def find_code(self, code_hash: str) -> CodeRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(*_CODE_COLUMNS).where(AuthorizationCode.code_hash == code_hash))
            ).first()
        return None if row is None else _code(row)

    async def redeem_code(
        self, code_hash: str, client_id: str, now: datetime, session: RefreshRecord, audit: AuditRecord
    ) -> CodeRecord:
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(AuthorizationCode)
                    .where(
                        AuthorizationCode.code_hash == code_hash,
                        AuthorizationCode.client_id == client_id,
                        AuthorizationCode.redeemed_at.is_(None),
                        AuthorizationCode.expires_at > now,
                    )
                    .values(redeemed_at=now, family_id=session.family_id)
                    .returning(*_CODE_COLUMNS)
                )
            ).first()
            if row is not None:
                await conn.execute(REFRESH_INSERT, refresh_values(session))
                await append(conn, audit, self.hasher)
                return _code(row)
            found = (
                await conn.execute(select(*_CODE_COLUMNS).where(AuthorizationCode.code_hash == code_hash))
            ).first()
        if found is None:
            raise CodeUnavailable("unknown")
        code = _code(found)
        if code.client_id != client_id:
            raise CodeUnavailable("other_client")
        if code.redeemed_at is not None:
            raise CodeUnavailable("reused", code.family_id)
        raise CodeUnavailable("expired")

    async def purge_expired(self, now: datetime) -> int:
        async with self._write() as conn:
            requests = await conn.execute(
                delete(AuthorizationRequest).where(AuthorizationRequest.expires_at <= now)
            )
            codes = await conn.execute(delete(AuthorizationCode).where(AuthorizationCode.expires_at <= now))
            return int(requests.rowcount) + int(codes.rowcount)  # type: ignore[attr-defined]
