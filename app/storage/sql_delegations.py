"""SQL implementation of DelegationStore (app.storage.delegation_records), for SQLite and PostgreSQL.

Revocation is one conditional ``UPDATE ... WHERE revoked_at IS NULL`` with its audit entry in the same
transaction, so a delegation is revoked (and audited) once whoever races. ``revoke_subject_delegations``
runs inside SqlStore's transaction when the chain takes a wallet's eligibility away.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.storage.delegation_records import DelegationExists, DelegationRecord
from app.storage.models_delegations import Delegation
from app.storage.records import AuditRecord
from app.storage.sql_audit import EntryHasher, append
from app.storage.writes import AuditedSqlStore

_COLUMNS = (
    Delegation.delegation_id,
    Delegation.message_hash,
    Delegation.subject,
    Delegation.address,
    Delegation.chain_id,
    Delegation.delegate_jkt,
    Delegation.scope,
    Delegation.authorization_details,
    Delegation.message,
    Delegation.created_at,
    Delegation.expires_at,
    Delegation.not_before,
    Delegation.revoked_at,
    Delegation.revoked_reason,
)


def _record(row: Any) -> DelegationRecord:
    return DelegationRecord(*row)


def _live(now: datetime) -> list[Any]:
    return [
        Delegation.revoked_at.is_(None),
        Delegation.expires_at > now,
        or_(Delegation.not_before.is_(None), Delegation.not_before <= now),
    ]


# The audit entry of one delegation the chain's revocation ended, from its id and delegate thumbprint.
DescribeRevoked = Callable[[str, str], AuditRecord]


async def revoke_subject_delegations(
    conn: AsyncConnection,
    subject: str,
    now: datetime,
    reason: str,
    describe: DescribeRevoked,
    hasher: EntryHasher,
) -> int:
    """Inside the caller's transaction: revoke every unrevoked delegation of ``subject``, one audit
    entry per delegation."""
    rows = (
        await conn.execute(
            update(Delegation)
            .where(Delegation.subject == subject, Delegation.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason[:64])
            .returning(Delegation.delegation_id, Delegation.delegate_jkt)
        )
    ).all()
    for delegation_id, jkt in sorted(rows):
        await append(conn, describe(delegation_id, jkt), hasher)
    return len(rows)


class SqlDelegationStore(AuditedSqlStore):
    async def create(self, record: DelegationRecord, audit: AuditRecord) -> None:
        values = {c.key: getattr(record, c.key) for c in _COLUMNS}
        try:
            async with self._write() as conn:
                await conn.execute(insert(Delegation).values(**values))
                await append(conn, audit, self.hasher)
        except IntegrityError:
            raise DelegationExists(record.message_hash) from None

    async def get(self, delegation_id: str) -> DelegationRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(*_COLUMNS).where(Delegation.delegation_id == delegation_id))
            ).first()
        return None if row is None else _record(row)

    async def for_subject(self, subject: str) -> list[DelegationRecord]:
        return await self.listing(subject, limit=1000)

    async def listing(self, subject: str | None = None, limit: int = 100) -> list[DelegationRecord]:
        query = (
            select(*_COLUMNS).order_by(Delegation.created_at.desc(), Delegation.delegation_id).limit(limit)
        )
        if subject is not None:
            query = query.where(Delegation.subject == subject)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(r) for r in rows]

    async def revoke(
        self, delegation_id: str, now: datetime, reason: str, audit: AuditRecord, subject: str | None = None
    ) -> bool:
        conditions = [Delegation.delegation_id == delegation_id, Delegation.revoked_at.is_(None)]
        if subject is not None:
            conditions.append(Delegation.subject == subject)
        async with self._write() as conn:
            done = (
                await conn.execute(
                    update(Delegation)
                    .where(*conditions)
                    .values(revoked_at=now, revoked_reason=reason[:64])
                    .returning(Delegation.delegation_id)
                )
            ).first()
            if done is None:
                return False
            await append(conn, audit, self.hasher)
            return True

    async def active(self, delegation_id: str, now: datetime) -> bool:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(Delegation.delegation_id).where(
                        Delegation.delegation_id == delegation_id, *_live(now)
                    )
                )
            ).first()
        return row is not None
