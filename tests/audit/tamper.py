"""Helpers that damage a stored audit log the way an attacker with database access could."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.chain import entry_hash
from app.storage.models import AuditEntry, AuditHead


async def rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(AuditEntry.__table__).order_by(AuditEntry.seq))
        return [r._asdict() for r in result]


async def modify(engine: AsyncEngine, seq: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(reason="nothing to see"))


async def remove(engine: AsyncEngine, seq: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(AuditEntry).where(AuditEntry.seq == seq))


async def swap(engine: AsyncEngine, a: int, b: int) -> None:
    """Exchange two entries' positions (their seq numbers), contents untouched."""
    async with engine.begin() as conn:
        await conn.execute(update(AuditEntry).where(AuditEntry.seq == a).values(seq=-1))
        await conn.execute(update(AuditEntry).where(AuditEntry.seq == b).values(seq=a))
        await conn.execute(update(AuditEntry).where(AuditEntry.seq == -1).values(seq=b))


async def insert_forged(engine: AsyncEngine, at: int) -> None:
    """Shift entries >= ``at`` up by one and put a well-formed forged entry at ``at``, linked to at - 1."""
    all_rows = await rows(engine)
    before = next(r for r in all_rows if r["seq"] == at - 1)
    async with engine.begin() as conn:
        for r in sorted((r for r in all_rows if r["seq"] >= at), key=lambda r: -r["seq"]):
            await conn.execute(update(AuditEntry).where(AuditEntry.seq == r["seq"]).values(seq=r["seq"] + 1))
        forged = {**before, "seq": at, "prev_hash": before["hash"], "reason": "forged", "data": {}}
        forged["hash"] = entry_hash(forged)
        await conn.execute(insert(AuditEntry).values(**{**forged, "data": "{}"}))
        await conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))


async def truncate(engine: AsyncEngine, keep: int) -> None:
    """Delete every entry after ``keep`` and wind the head back, as a careful attacker would."""
    all_rows = await rows(engine)
    last = next(r for r in all_rows if r["seq"] == keep)
    async with engine.begin() as conn:
        await conn.execute(delete(AuditEntry).where(AuditEntry.seq > keep))
        await conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=keep, hash=last["hash"]))
