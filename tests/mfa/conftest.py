"""MFA fixtures: a migrated database (SQLite, and PostgreSQL when configured), the SQL store, the service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.chain import ChainState, entry_hash, step
from app.audit.events import Auditor
from app.mfa.service import MfaService, MfaSettings
from app.mfa.webauthn import RelyingParty
from app.storage import migrate
from app.storage.db import create_engine
from app.storage.models import AuditEntry
from app.storage.sql import SqlStore
from app.storage.sql_mfa import SqlFactorStore
from tests.conftest import FakeClock, make_settings

SECRET = b"mfa-test-server-secret-" + b"x" * 24
RP = RelyingParty(id="auth.example.test", name="Portcullis", origins=("https://auth.example.test",))
ORIGIN = RP.origins[0]
# 10 s into a 30 s TOTP step, so +-5 s moves never cross a step boundary.
START = datetime(2026, 12, 6, 12, 0, 10, tzinfo=UTC)


def new_subject() -> str:
    return f"did:pkh:eip155:1:{Account.create().address}"


@dataclass
class Rig:
    engine: AsyncEngine
    store: SqlFactorStore
    service: MfaService
    clock: FakeClock

    def with_settings(self, settings: MfaSettings) -> MfaService:
        return MfaService(
            clock=self.clock, store=self.store, auditor=self.service.auditor, secret=SECRET, settings=settings
        )


@pytest.fixture
async def rig(database_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    clock = FakeClock(START)
    auditor = Auditor(make_settings(tmp_path, database_url=database_url), clock, SECRET)
    store = SqlFactorStore(engine, entry_hash)
    service = MfaService(
        clock=clock, store=store, auditor=auditor, secret=SECRET, settings=MfaSettings(rp=RP)
    )
    try:
        yield Rig(engine, store, service, clock)
    finally:
        await engine.dispose()


async def audit_entries(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(AuditEntry.__table__).order_by(AuditEntry.seq))).all()
    entries = []
    for row in rows:
        entry = row._asdict()
        entry["data"] = json.loads(entry["data"])
        entries.append(entry)
    return entries


async def assert_chain_intact(engine: AsyncEngine) -> int:
    """Recompute the audit hash chain over every entry (app.audit.chain), as an auditor would."""
    state = ChainState(next_seq=1, prev_hash="0" * 64)
    async for entry in SqlStore(engine, entry_hash).entries():
        assert step(entry, state) is None
    return state.checked
