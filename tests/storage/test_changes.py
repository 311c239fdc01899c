"""app.storage.changes: a NOTIFY is delivered at COMMIT, never for a rolled-back change, and a listener
that (re)connects re-reads every topic once."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from app.storage import changes
from tests.conftest import postgres_database


async def test_a_committed_change_is_heard_and_a_rolled_back_one_is_not() -> None:
    async with postgres_database() as url:
        heard: list[tuple[str, str]] = []

        def handler(topic: str):  # type: ignore[no-untyped-def]
            async def on(detail: str) -> None:
                heard.append((topic, detail))

            return on

        dsn = changes.listener_dsn(url)
        assert dsn is not None
        listener = changes.ChangeListener(dsn, {t: handler(t) for t in (changes.KEYS, changes.CHAIN)})
        stop = asyncio.Event()
        task = asyncio.create_task(listener.run(stop))
        engine = create_async_engine(url)
        try:
            await asyncio.wait_for(listener.connected.wait(), 10)
            await asyncio.sleep(0.2)
            assert sorted(heard) == [(changes.CHAIN, ""), (changes.KEYS, "")]  # the re-read on connect
            heard.clear()
            with contextlib.suppress(RuntimeError):
                async with engine.begin() as conn:
                    await changes.announce(conn, changes.KEYS)
                    raise RuntimeError("roll back")
            async with engine.begin() as conn:
                await changes.announce(conn, changes.CHAIN, changes.chain_detail(1, "0xAbC"))
            for _ in range(50):
                if heard:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            assert heard == [(changes.CHAIN, "1:0xabc")]
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
            await engine.dispose()


def test_sqlite_has_no_listener() -> None:
    assert changes.listener_dsn("sqlite+aiosqlite:///x.db") is None


@pytest.mark.parametrize("url", ["postgresql+asyncpg://u:p@h:5/db"])
def test_the_listener_dsn_is_plain_asyncpg(url: str) -> None:
    assert changes.listener_dsn(url) == "postgresql://u:p@h:5/db"
