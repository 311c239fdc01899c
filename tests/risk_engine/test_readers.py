"""HeldReaders and PreparedRead on both backends: held connections, the bound, closing, cut connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import String, bindparam, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from app.risk.readers import HeldReaders, PreparedRead
from app.storage.db import create_engine


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def checked_out(engine: AsyncEngine) -> int:
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedout()


def echo(engine: AsyncEngine) -> PreparedRead:
    """One row: the parameter back, beside a constant the statement carries itself."""
    return PreparedRead(
        select(bindparam("value", type_=String), literal_column("7"), bindparam("own", 3)), engine.dialect
    )


async def test_reads_reuse_one_held_connection(engine: AsyncEngine) -> None:
    readers, read = HeldReaders(engine, 2), echo(engine)
    for n in range(5):
        assert await readers.fetch_one(read, {"value": f"v{n}"}) == (f"v{n}", 7, 3)
    assert checked_out(engine) == 1
    await readers.close()
    assert checked_out(engine) == 0
    with pytest.raises(RuntimeError):
        await readers.fetch_one(read, {"value": "late"})


async def test_concurrent_reads_hold_at_most_size_connections(engine: AsyncEngine) -> None:
    readers, read = HeldReaders(engine, 2), echo(engine)
    rows = await asyncio.gather(*(readers.fetch_one(read, {"value": str(n)}) for n in range(12)))
    assert [row[0] for row in rows] == [str(n) for n in range(12)]
    assert checked_out(engine) == 2
    await readers.close()
    assert checked_out(engine) == 0


async def test_a_missing_parameter_is_an_error_not_a_null(engine: AsyncEngine) -> None:
    readers = HeldReaders(engine, 1)
    with pytest.raises(KeyError):
        await readers.fetch_one(echo(engine), {})
    await readers.close()


async def test_a_cut_connection_is_replaced(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("only a server can cut a connection from outside")
    readers, read = HeldReaders(engine, 1), echo(engine)
    assert await readers.fetch_one(read, {"value": "before"}) == ("before", 7, 3)
    async with engine.connect() as conn:  # as a server restart or an idle timeout would
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert await readers.fetch_one(read, {"value": "after"}) == ("after", 7, 3)
    assert checked_out(engine) == 1
    await readers.close()


async def test_postgresql_plans_once_and_the_pool_gets_its_setting_back(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL session setting")
    readers = HeldReaders(engine, 1)
    setting = PreparedRead(select(func.current_setting("plan_cache_mode")), engine.dialect)
    assert await readers.fetch_one(setting, {}) == ("force_generic_plan",)
    await readers.close()
    assert checked_out(engine) == 0
    async with engine.connect() as conn:  # the one connection of the pool, back from the readers
        assert (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one() == "auto"


async def test_at_least_one_connection() -> None:
    with pytest.raises(ValueError, match="at least one"):
        HeldReaders(create_engine("sqlite+aiosqlite://"), 0)
