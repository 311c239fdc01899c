"""SQL side of the one-entry rule for on-chain events (docs/AUDIT.md, "chain.change").

``INSERT ... ON CONFLICT DO NOTHING`` on the ``chain_events`` primary key, inside the transaction that
appends the audit entry: the first replica to insert an event's key writes its entry; a concurrent one
waits on the uncommitted row (PostgreSQL) or the database lock (SQLite) and then inserts nothing. A
rolled-back transaction leaves no key behind, so another replica may still record the event.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.storage.models import ChainEvent
from app.storage.records import ChainEventKey


async def claim(conn: AsyncConnection, key: ChainEventKey) -> bool:
    """Insert ``key`` unless it is there already; True when this transaction inserted it."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(ChainEvent)
        .values(
            chain_id=key.chain_id,
            tx_hash=key.transaction_hash.lower(),
            log_index=key.log_index,
            account=key.account.lower(),
            event=key.event,
            block_number=key.block_number,
            block_hash=key.block_hash.lower(),
        )
        .on_conflict_do_nothing()
    )
    result = await conn.execute(statement)
    return int(result.rowcount) == 1  # type: ignore[attr-defined]
