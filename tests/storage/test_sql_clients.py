"""SqlClientStore (RFC 7591/7592 registered clients) on SQLite and PostgreSQL: live rows only, the audit
entry in the change's own transaction, deletion revoking the client's refresh tokens, one winner in a race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.chain import entry_hash
from app.audit.events import CLIENT_DELETED, SUCCESS, Auditor, RequestMeta
from app.storage import migrate
from app.storage.db import create_engine
from app.storage.models import AuditEntry, RefreshToken
from app.storage.models_authz import ClientRecord, RegisteredClient
from app.storage.records import AuditRecord
from app.storage.sql_clients import SqlClientStore
from tests.conftest import FakeClock, make_settings
from tests.mfa.conftest import assert_chain_intact, audit_entries

RACERS = 8


@dataclass
class Rig:
    engine: AsyncEngine
    store: SqlClientStore
    auditor: Auditor
    clock: FakeClock

    def audit(self, type: str = "client.test", **data: Any) -> AuditRecord:
        return self.auditor.event(type, SUCCESS, RequestMeta(), data=data)

    def record(self, client_id: str, token_hash: str = "a" * 64) -> ClientRecord:
        now = self.clock.now()
        return ClientRecord(client_id, f'{{"client_id": "{client_id}"}}', token_hash, now, now)


@pytest.fixture
async def rig(database_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    clock = FakeClock()
    auditor = Auditor(make_settings(tmp_path, database_url=database_url), clock, b"s" * 32)
    try:
        yield Rig(engine, SqlClientStore(engine, entry_hash), auditor, clock)
    finally:
        await engine.dispose()


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def add_refresh_token(engine: AsyncEngine, token_hash: str, client_id: str, now: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(RefreshToken).values(
                token_hash=token_hash,
                family_id=f"family-{token_hash}",
                client_id=client_id,
                subject="did:pkh:eip155:1:0x0000000000000000000000000000000000000001",
                address="0x0000000000000000000000000000000000000001",
                chain_id=1,
                scope="openid",
                auth_time=now,
                issued_at=now,
                expires_at=now + timedelta(days=1),
            )
        )


async def test_create_get_list_and_no_second_use_of_an_id(rig: Rig) -> None:
    assert await rig.store.create(rig.record("c1"), rig.audit())
    rig.clock.advance(1)
    assert await rig.store.create(rig.record("c2"), rig.audit())
    assert not await rig.store.create(rig.record("c1"), rig.audit())  # taken: nothing written
    got = await rig.store.get("c1")
    assert got is not None and got.registration_token_hash == "a" * 64 and got.metadata_json.startswith("{")
    assert [r.client_id for r in await rig.store.list_active()] == ["c1", "c2"]
    assert await count(rig.engine, AuditEntry) == 2
    assert await rig.store.get("unknown") is None


async def test_replace_and_delete_touch_live_clients_only(rig: Rig) -> None:
    assert await rig.store.create(rig.record("c1"), rig.audit())
    rig.clock.advance(5)
    assert await rig.store.replace("c1", '{"v": 2}', rig.clock.now(), rig.audit())
    got = await rig.store.get("c1")
    assert got is not None and got.metadata_json == '{"v": 2}' and got.updated_at == rig.clock.now()
    assert await rig.store.delete("c1", rig.clock.now(), lambda n: rig.audit(CLIENT_DELETED, revoked=n))
    assert await rig.store.get("c1") is None and await rig.store.list_active() == []
    assert not await rig.store.replace("c1", '{"v": 3}', rig.clock.now(), rig.audit())
    assert not await rig.store.delete("c1", rig.clock.now(), lambda n: rig.audit())
    assert not await rig.store.create(rig.record("c1"), rig.audit())  # a deleted id is not handed out again
    assert [e["type"] for e in await audit_entries(rig.engine)] == [
        "client.test",
        "client.test",
        CLIENT_DELETED,
    ]
    async with rig.engine.connect() as conn:
        deleted_at = (await conn.execute(select(RegisteredClient.deleted_at))).scalar_one()
    assert deleted_at == rig.clock.now()
    assert await assert_chain_intact(rig.engine) == 3


async def test_delete_revokes_the_clients_refresh_tokens_and_no_others(rig: Rig) -> None:
    now = rig.clock.now()
    assert await rig.store.create(rig.record("c1"), rig.audit())
    for token_hash, client_id in (("t1", "c1"), ("t2", "c1"), ("t3", "someone-else")):
        await add_refresh_token(rig.engine, token_hash, client_id, now)
    assert await rig.store.delete("c1", now, lambda n: rig.audit(CLIENT_DELETED, revoked=n))
    async with rig.engine.connect() as conn:
        rows = dict((await conn.execute(select(RefreshToken.token_hash, RefreshToken.revoked_reason))).all())
    assert rows == {"t1": "client_deleted", "t2": "client_deleted", "t3": None}
    assert (await audit_entries(rig.engine))[-1]["data"] == {"revoked": 2}


async def test_a_failed_audit_append_leaves_no_change(rig: Rig) -> None:
    def broken(_entry: dict[str, Any]) -> str:
        raise RuntimeError("audit unavailable")

    failing = SqlClientStore(rig.engine, broken)
    with pytest.raises(RuntimeError):
        await failing.create(rig.record("c1"), rig.audit())
    assert await rig.store.get("c1") is None and await count(rig.engine, RegisteredClient) == 0
    assert await rig.store.create(rig.record("c1"), rig.audit())
    with pytest.raises(RuntimeError):
        await failing.delete("c1", rig.clock.now(), lambda n: rig.audit())
    assert await rig.store.get("c1") is not None


async def test_concurrent_deletes_have_one_winner(rig: Rig) -> None:
    assert await rig.store.create(rig.record("c1"), rig.audit())
    results = await asyncio.gather(
        *(rig.store.delete("c1", rig.clock.now(), lambda n: rig.audit(CLIENT_DELETED)) for _ in range(RACERS))
    )
    assert sorted(results) == [False] * (RACERS - 1) + [True]
    assert [e["type"] for e in await audit_entries(rig.engine)].count(CLIENT_DELETED) == 1
