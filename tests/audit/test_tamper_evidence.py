"""Damage the stored log in every way an attacker could; verify must name the entry (both backends)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit.checkpoints import FileSink
from app.audit.verify import verify_log
from app.storage.models import AuditCheckpoint
from tests.audit import tamper
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text

SIGN_INS = 8


async def fill(h: Harness) -> None:
    for _ in range(SIGN_INS):
        wallet = Account.create()
        offer = (await h.client.post("/siwe/nonce")).json()
        message = siwe_text(offer, wallet.address, issued_at=h.clock.now())
        reply = await h.client.post(
            "/siwe/verify", json={"message": message, "signature": sign(wallet, message)}
        )
        assert reply.status_code == 200


async def verify(h: Harness) -> Any:
    p = h.app.state.provider
    return await verify_log(p.audit_log, p.checkpoint_store, FileSink(h.settings.audit_checkpoint_file))


Damage = Callable[[AsyncEngine], Awaitable[None]]

CASES: list[tuple[str, Damage, int, str]] = [
    ("modified", lambda e: tamper.modify(e, 5), 5, "modified"),
    ("deleted", lambda e: tamper.remove(e, 7), 7, "missing"),
    ("reordered", lambda e: tamper.swap(e, 6, 7), 6, "reordered"),
    ("inserted", lambda e: tamper.insert_forged(e, 4), 4, "inserted"),
    ("deleted first", lambda e: tamper.remove(e, 1), 1, "missing"),
]


@pytest.mark.parametrize(("name", "damage", "seq", "problem"), CASES, ids=[c[0] for c in CASES])
async def test_tampering_is_named(
    database_url: str, tmp_path: Path, name: str, damage: Damage, seq: int, problem: str
) -> None:
    async with running_app(make_settings(tmp_path, database_url=database_url), FakeClock()) as h:
        await fill(h)
        before = await verify(h)
        assert before.ok, before.finding
        await damage(h.app.state.provider.store.engine)
        report = await verify(h)
        assert not report.ok
        assert (report.finding.seq, report.finding.problem) == (seq, problem), str(report.finding)


async def test_truncated_tail_is_caught_by_the_checkpoint(database_url: str, tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, database_url=database_url), FakeClock()) as h:
        await fill(h)
        cp = await h.app.state.runtime_checkpointer.tick(h.clock.now(), force=True)
        assert cp is not None and cp.seq == SIGN_INS + 2
        await tamper.truncate(h.app.state.provider.store.engine, keep=cp.seq - 3)
        report = await verify(h)
        assert report.finding is not None and report.finding.problem == "truncated"
        assert report.finding.seq == cp.seq - 2
        assert f"covers entries up to {cp.seq}" in report.finding.detail


async def test_checkpoints_in_the_sink_survive_their_deletion_from_the_database(
    tmp_path: Path, sqlite_url: str
) -> None:
    from sqlalchemy import delete

    async with running_app(make_settings(tmp_path, database_url=sqlite_url), FakeClock()) as h:
        await fill(h)
        cp = await h.app.state.runtime_checkpointer.tick(h.clock.now(), force=True)
        engine = h.app.state.provider.store.engine
        async with engine.begin() as conn:
            await conn.execute(delete(AuditCheckpoint))
        await tamper.truncate(engine, keep=cp.seq - 1)
        report = await verify(h)
        assert report.finding is not None and report.finding.problem == "truncated"


async def test_forged_checkpoint_signature_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    async with running_app(make_settings(tmp_path, database_url=sqlite_url), FakeClock()) as h:
        await fill(h)
        cp = await h.app.state.runtime_checkpointer.tick(h.clock.now(), force=True)
        sink = Path(h.settings.audit_checkpoint_file)
        line = json.loads(sink.read_text())
        line["head_hash"] = "f" * 64
        sink.write_text(json.dumps(line) + "\n")
        async with h.app.state.provider.store.engine.begin() as conn:
            await conn.execute(update(AuditCheckpoint).values(head_hash="f" * 64))
        report = await verify(h)
        assert report.finding is not None and report.finding.problem == "checkpoint"
        assert report.finding.seq == cp.seq and "signature" in report.finding.detail


async def test_rewritten_chain_is_caught_by_an_earlier_checkpoint(tmp_path: Path, sqlite_url: str) -> None:
    """An attacker who recomputes every hash after an edit still contradicts the signed checkpoint."""
    from app.audit.chain import entry_hash
    from app.storage.models import AuditEntry, AuditHead

    async with running_app(make_settings(tmp_path, database_url=sqlite_url), FakeClock()) as h:
        await fill(h)
        cp = await h.app.state.runtime_checkpointer.tick(h.clock.now(), force=True)
        engine = h.app.state.provider.store.engine
        rows = await tamper.rows(engine)
        prev = rows[2]["prev_hash"]
        async with engine.begin() as conn:
            for r in rows[2:]:
                r = {**r, "prev_hash": prev, "data": json.loads(r["data"])}
                if r["seq"] == 3:
                    r["reason"] = "rewritten"
                r["hash"] = entry_hash(r)
                prev = r["hash"]
                await conn.execute(
                    update(AuditEntry)
                    .where(AuditEntry.seq == r["seq"])
                    .values(reason=r["reason"], prev_hash=r["prev_hash"], hash=r["hash"])
                )
            await conn.execute(update(AuditHead).values(hash=prev))
        report = await verify(h)
        assert report.finding is not None and report.finding.problem == "checkpoint"
        assert report.finding.seq == cp.seq
