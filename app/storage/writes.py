"""Write transactions shared by every SQL store on one engine.

SQLite has one writer at a time. Queueing this process's writers on one asyncio lock avoids SQLite's
sleep-and-retry busy handler, which turns contention into 100 ms stalls (see docs/PERFORMANCE.md); other
processes on the same file still wait through busy_timeout. Every store on an engine must queue on the
same lock, so the stores built beside ``SqlStore`` are handed its lock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.storage.sql_audit import EntryHasher


def sqlite_write_lock(engine: AsyncEngine, shared: asyncio.Lock | None = None) -> asyncio.Lock | None:
    """The lock writers of ``engine`` queue on: ``shared`` (or a new one) on SQLite, none elsewhere."""
    if engine.dialect.name != "sqlite":
        return None
    return shared or asyncio.Lock()


@contextlib.asynccontextmanager
async def write_transaction(engine: AsyncEngine, lock: asyncio.Lock | None) -> AsyncIterator[AsyncConnection]:
    """A write transaction: committed on success, rolled back on any exception."""
    if lock is None:
        async with engine.begin() as conn:
            yield conn
        return
    async with lock, engine.begin() as conn:
        yield conn


class AuditedSqlStore:
    """The base of a store whose writes carry their audit entry in the same transaction: the engine, the
    entry hasher (app.audit.chain.entry_hash, handed in so that storage depends on nothing above it) and
    the engine's write queue (pass SqlStore's: one queue per engine)."""

    def __init__(
        self, engine: AsyncEngine, hasher: EntryHasher, write_lock: asyncio.Lock | None = None
    ) -> None:
        self.engine = engine
        self.hasher = hasher
        self._write_lock = sqlite_write_lock(engine, write_lock)

    def _write(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return write_transaction(self.engine, self._write_lock)
