"""SQL side of the audit trail: gapless appends under one row lock, streaming reads, checkpoints.

Every append locks the single ``audit_head`` row (``UPDATE ... SET seq = seq + 1 RETURNING``) inside the
caller's transaction. The lock is held until that transaction commits or rolls back, so sequence numbers
are handed out one at a time, a rolled-back change leaves no gap, and concurrent writers in several
processes (PostgreSQL row lock, SQLite database lock) never duplicate a number.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.storage.models import AuditCheckpoint, AuditEntry, AuditHead, AuditKey, Base
from app.storage.records import AuditRecord, CheckpointRecord, KeyRecord

EntryHasher = Callable[[dict[str, Any]], str]

_ENTRY_COLUMNS = tuple(c for c in AuditEntry.__table__.columns)

# Built once (Core constructs with bind parameters compile once and are cached): appends are on every
# sign-in's path.
_HEAD = Base.metadata.tables[AuditHead.__tablename__]
_NEXT_SEQ = (
    update(_HEAD).where(_HEAD.c.id == 1).values(seq=_HEAD.c.seq + 1).returning(_HEAD.c.seq, _HEAD.c.hash)
)
_SET_HEAD_HASH = update(_HEAD).where(_HEAD.c.id == 1).values(hash=bindparam("digest"))
_INSERT_ENTRY = insert(Base.metadata.tables[AuditEntry.__tablename__])


async def append(conn: AsyncConnection, record: AuditRecord, hasher: EntryHasher) -> int:
    """Append ``record`` inside the caller's transaction; return its sequence number."""
    seq, prev_hash = (await conn.execute(_NEXT_SEQ)).one()
    entry = record.entry(seq, prev_hash)
    digest = hasher(entry)
    row = {**entry, "data": json.dumps(entry["data"], sort_keys=True, separators=(",", ":")), "hash": digest}
    await conn.execute(_INSERT_ENTRY, row)
    await conn.execute(_SET_HEAD_HASH, {"digest": digest})
    return int(seq)


class SqlAuditLog:
    """Implements AuditLog and CheckpointStore; mixed into SqlStore, which provides engine and _write."""

    engine: AsyncEngine
    hasher: EntryHasher

    def _write(self) -> Any:  # provided by SqlStore
        raise NotImplementedError

    async def record(self, audit: AuditRecord) -> int:
        async with self._write() as conn:
            return await append(conn, audit, self.hasher)

    async def head(self) -> tuple[int, str]:
        async with self.engine.connect() as conn:
            seq, digest = (
                await conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1))
            ).one()
        return int(seq), str(digest)

    async def log_id(self) -> str | None:
        async with self.engine.connect() as conn:
            value = (await conn.execute(select(AuditHead.log_id).where(AuditHead.id == 1))).scalar_one()
        return None if value is None else str(value)

    async def entries(self, from_seq: int = 1, to_seq: int | None = None) -> AsyncIterator[dict[str, Any]]:
        query = select(*_ENTRY_COLUMNS).where(AuditEntry.seq >= from_seq).order_by(AuditEntry.seq)
        if to_seq is not None:
            query = query.where(AuditEntry.seq <= to_seq)
        async with self.engine.connect() as conn:
            result = await conn.stream(query.execution_options(yield_per=5000))
            async for partition in result.partitions():
                for row in partition:
                    entry = row._asdict()
                    entry["data"] = json.loads(entry["data"])
                    yield entry

    async def purge_entries(self, up_to_seq: int) -> int:
        async with self._write() as conn:
            result = await conn.execute(delete(AuditEntry).where(AuditEntry.seq <= up_to_seq))
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def checkpoints(self) -> list[CheckpointRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))).all()
        return [CheckpointRecord(r.seq, r.head_hash, r.ts, r.kid, r.signature, r.log_id) for r in rows]

    async def add_checkpoint(self, checkpoint: CheckpointRecord) -> bool:
        try:
            async with self._write() as conn:
                await conn.execute(
                    insert(AuditCheckpoint).values(
                        seq=checkpoint.seq,
                        head_hash=checkpoint.head_hash,
                        ts=checkpoint.ts,
                        kid=checkpoint.kid,
                        signature=checkpoint.signature,
                        log_id=checkpoint.log_id,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def audit_keys(self) -> list[KeyRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(AuditKey).order_by(AuditKey.created_at))).all()
        return [KeyRecord(r.kid, r.alg, r.public_jwk, r.private_key_encrypted, r.created_at) for r in rows]

    async def add_audit_key(self, key: KeyRecord, audit: AuditRecord) -> None:
        async with self._write() as conn:
            await conn.execute(insert(AuditKey).values(**key.new_row()))
            await append(conn, audit, self.hasher)
