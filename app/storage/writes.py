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
