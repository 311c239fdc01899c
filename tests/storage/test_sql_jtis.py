"""Shared single-use JWT ids (RFC 7523 assertions, RFC 9449 DPoP proofs) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.chain import entry_hash
from app.oauth.client_auth import AssertionJtiStore
from app.oauth.dpop import JtiStore
from app.storage import migrate
from app.storage.db import create_engine
from app.storage.models_authz import UsedJti
from app.storage.sql import SqlStore
from app.storage.sql_jtis import SqlAssertionJtiStore, SqlDpopJtiStore, jti_key_hash
from tests.conftest import FakeClock

RACERS = 25


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_a_jti_is_accepted_once(engine: AsyncEngine, clock: FakeClock) -> None:
    store: AssertionJtiStore = SqlAssertionJtiStore(engine, clock.now)
    until = clock.now() + timedelta(minutes=2)
    assert await store.seen("svc", "jti-1", until) is False
    assert await store.seen("svc", "jti-1", until) is True
    assert await store.seen("svc", "jti-2", until) is False  # another jti
    assert await store.seen("other", "jti-1", until) is False  # the same jti from another client


async def test_kinds_and_issuers_do_not_collide(engine: AsyncEngine, clock: FakeClock) -> None:
    assertions = SqlAssertionJtiStore(engine, clock.now)
    proofs: JtiStore = SqlDpopJtiStore(engine, clock.now)
    until = clock.now() + timedelta(minutes=1)
    assert await assertions.seen("abc", "x", until) is False
    assert await proofs.seen("abc", "x", until) is False  # a DPoP proof is not a client assertion
    assert await proofs.seen("abc", "x", until) is True
    # Concatenation would make these one key; the encoding keeps them apart.
    assert await assertions.seen("ab", "cx", until) is False
    assert jti_key_hash("assertion", "ab", "cx") != jti_key_hash("assertion", "abc", "x")


async def test_two_workers_on_one_database(database_url: str, engine: AsyncEngine, clock: FakeClock) -> None:
    second = create_engine(database_url)  # another worker: its own engine, pool and (SQLite) write lock
    try:
        first_store, second_store = SqlDpopJtiStore(engine, clock.now), SqlDpopJtiStore(second, clock.now)
        until = clock.now() + timedelta(seconds=30)
        assert await first_store.seen("jkt", "proof-1", until) is False
        assert await second_store.seen("jkt", "proof-1", until) is True
        assert await second_store.seen("jkt", "proof-2", until) is False
        assert await first_store.seen("jkt", "proof-2", until) is True
        raced = await asyncio.gather(
            *(s.seen("jkt", "proof-3", until) for s in [first_store, second_store] * (RACERS // 2))
        )
        assert sorted(raced) == [False] + [True] * (len(raced) - 1)
    finally:
        await second.dispose()


async def test_concurrent_calls_have_one_winner(engine: AsyncEngine, clock: FakeClock) -> None:
    store = SqlAssertionJtiStore(engine, clock.now)
    until = clock.now() + timedelta(minutes=5)
    raced = await asyncio.gather(*(store.seen("svc", "hot", until) for _ in range(RACERS)))
    assert raced.count(False) == 1 and raced.count(True) == RACERS - 1


async def test_an_expired_row_is_taken_over(engine: AsyncEngine, clock: FakeClock) -> None:
    store = SqlAssertionJtiStore(engine, clock.now)
    assert await store.seen("svc", "jti", clock.now() + timedelta(seconds=60)) is False
    clock.advance(59)
    assert await store.seen("svc", "jti", clock.now() + timedelta(seconds=60)) is True
    clock.advance(1)  # the first assertion has expired: its row no longer protects anything
    assert await store.seen("svc", "jti", clock.now() + timedelta(seconds=60)) is False
    assert await store.seen("svc", "jti", clock.now() + timedelta(seconds=60)) is True
    async with engine.connect() as conn:
        rows = (await conn.execute(select(UsedJti.kind, UsedJti.expires_at))).all()
    assert rows == [("assertion", clock.now() + timedelta(seconds=60))]


async def test_concurrent_takeover_of_an_expired_row(engine: AsyncEngine, clock: FakeClock) -> None:
    store = SqlDpopJtiStore(engine, clock.now)
    assert await store.seen("jkt", "p", clock.now() + timedelta(seconds=10)) is False
    clock.advance(10)
    until = clock.now() + timedelta(seconds=10)
    raced = await asyncio.gather(*(store.seen("jkt", "p", until) for _ in range(RACERS)))
    assert raced.count(False) == 1


async def test_purge_and_hashes_only(engine: AsyncEngine, clock: FakeClock) -> None:
    store = SqlAssertionJtiStore(engine, clock.now)
    await store.seen("svc", "short-lived", clock.now() + timedelta(seconds=5))
    await store.seen("svc", "long-lived", clock.now() + timedelta(seconds=300))
    async with engine.connect() as conn:
        keys = (await conn.execute(select(UsedJti.key_hash))).scalars().all()
    assert all(len(k) == 64 and "lived" not in k for k in keys) and len(keys) == 2
    assert await store.purge_expired(clock.now()) == 0
    clock.advance(5)
    assert await store.purge_expired(clock.now()) == 1
    assert await store.seen("svc", "long-lived", clock.now() + timedelta(seconds=300)) is True
    # Housekeeping purges through SqlStore.purge_expired, which covers used_jtis too.
    clock.advance(300)
    assert await SqlStore(engine, entry_hash).purge_expired(clock.now()) == 1


async def test_database_down_raises(clock: FakeClock) -> None:
    # Failing closed is the caller's: an exception is not "not seen" (the HTTP face answers 503).
    down = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(OSError):
            await SqlAssertionJtiStore(down, clock.now).seen("svc", "j", clock.now() + timedelta(seconds=9))
    finally:
        await down.dispose()
