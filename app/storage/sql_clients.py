"""SQL implementation of app.oauth.registrar's ClientStore (RFC 7591/7592), for SQLite and PostgreSQL alike.

Every change is one transaction holding the change and its audit append. Replace and delete are
conditional UPDATEs on a live row (``deleted_at IS NULL``), so a client deleted meanwhile is never revived
and of two concurrent deletions exactly one reports success. Deleted rows stay (soft delete): the audit
trail keeps naming a client that exists in the table, and a ``client_id`` is never handed out twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from app.storage import changes
from app.storage.models import RefreshToken
from app.storage.models_authz import ClientRecord, RegisteredClient
from app.storage.records import AuditRecord
from app.storage.sql_audit import append
from app.storage.writes import AuditedSqlStore

_COLUMNS = (
    RegisteredClient.client_id,
    RegisteredClient.metadata_json,
    RegisteredClient.registration_token_hash,
    RegisteredClient.created_at,
    RegisteredClient.updated_at,
)
# RFC 7592 section 2.3: deleting a client invalidates the grants and tokens issued to it.
DELETED_REASON = "client_deleted"


class SqlClientStore(AuditedSqlStore):
    """Implements app.oauth.registrar.ClientStore on one async engine.

    ``hasher`` computes an audit entry's hash (app.audit.chain.entry_hash), handed in so that storage
    depends on nothing above it.
    """

    async def create(self, record: ClientRecord, audit: AuditRecord) -> bool:
        try:
            async with self._write() as conn:
                await conn.execute(
                    insert(RegisteredClient).values(
                        client_id=record.client_id,
                        metadata_json=record.metadata_json,
                        registration_token_hash=record.registration_token_hash,
                        created_at=record.created_at,
                        updated_at=record.updated_at,
                        deleted_at=None,
                    )
                )
                await append(conn, audit, self.hasher)
                await changes.announce(conn, changes.CLIENTS)
        except IntegrityError:  # the client_id exists (live or deleted): nothing was written
            return False
        return True

    async def get(self, client_id: str) -> ClientRecord | None:
        query = select(*_COLUMNS).where(
            RegisteredClient.client_id == client_id, RegisteredClient.deleted_at.is_(None)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else ClientRecord(*row)

    async def replace(self, client_id: str, metadata_json: str, now: datetime, audit: AuditRecord) -> bool:
        statement = (
            update(RegisteredClient)
            .where(RegisteredClient.client_id == client_id, RegisteredClient.deleted_at.is_(None))
            .values(metadata_json=metadata_json, updated_at=now)
            .returning(RegisteredClient.client_id)
        )
        async with self._write() as conn:
            if (await conn.execute(statement)).first() is None:
                return False
            await append(conn, audit, self.hasher)
            await changes.announce(conn, changes.CLIENTS)
        return True

    async def delete(self, client_id: str, now: datetime, audit: Callable[[int], AuditRecord]) -> bool:
        statement = (
            update(RegisteredClient)
            .where(RegisteredClient.client_id == client_id, RegisteredClient.deleted_at.is_(None))
            .values(deleted_at=now, updated_at=now)
            .returning(RegisteredClient.client_id)
        )
        async with self._write() as conn:
            if (await conn.execute(statement)).first() is None:
                return False
            revoked = await conn.execute(
                update(RefreshToken)
                .where(RefreshToken.client_id == client_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=DELETED_REASON)
            )
            await append(conn, audit(int(revoked.rowcount)), self.hasher)  # type: ignore[attr-defined]
            await changes.announce(conn, changes.CLIENTS)
        return True

    async def list_active(self) -> list[ClientRecord]:
        query = (
            select(*_COLUMNS)
            .where(RegisteredClient.deleted_at.is_(None))
            .order_by(RegisteredClient.created_at, RegisteredClient.client_id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ClientRecord(*row) for row in rows]
