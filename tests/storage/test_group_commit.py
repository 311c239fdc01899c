"""Group commit (app/storage/group_commit.py), on SQLite and PostgreSQL: concurrent audited writes share
transactions, the log stays gapless and verifiable, and one request's refusal never costs another its
write."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.audit import events
from app.audit.checkpoints import FileSink
from app.audit.verify import verify_log
from app.storage.hot import Body
from app.storage.records import NonceUnavailable, RefreshRecord
from tests.conftest import FakeClock, make_settings, running_app

WRITERS = 40


class Refused(Exception):
    pass


def _counting(store: Any) -> list[int]:
    """Count the hot path's write transactions (each call of the driver's ``write`` is one)."""
    calls: list[int] = []
    real = store.hot.write

    async def write(body: Body[Any]) -> Any:
        calls.append(1)
        return await real(body)

    store.hot.write = write
    return calls


def _record(store: Any, p: Any, clock: FakeClock, i: int) -> Any:
    meta = events.RequestMeta(request_id=f"r{i}")
    return p.auditor.event(events.SIGNIN_FAILED, events.FAILURE, meta, reason="test", at=clock.now())


async def test_concurrent_appends_share_transactions_and_verify(database_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    settings = make_settings(tmp_path, database_url=database_url)
    async with running_app(settings, clock) as h:
        p = h.app.state.provider
        store = p.store
        seq_before, _ = await store.head()
        calls = _counting(store)
        await asyncio.gather(*(store.record(_record(store, p, clock, i)) for i in range(WRITERS)))
        seq_after, _ = await store.head()
        assert seq_after == seq_before + WRITERS  # gapless: every entry numbered, none twice
        assert len(calls) < WRITERS / 4, f"{len(calls)} transactions for {WRITERS} concurrent appends"
        entries = [e async for e in store.entries(seq_before + 1)]
        assert [e["seq"] for e in entries] == list(range(seq_before + 1, seq_after + 1))
        assert sorted(e["request_id"] for e in entries) == sorted(f"r{i}" for i in range(WRITERS))
        report = await verify_log(p.audit_log, p.checkpoint_store, FileSink(settings.audit_checkpoint_file))
        assert report.ok, report.finding


async def test_a_refusal_in_a_batch_leaves_the_others_whole(database_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_app(make_settings(tmp_path, database_url=database_url), clock) as h:
        p = h.app.state.provider
        store = p.store
        now = clock.now()
        later = now + timedelta(minutes=5)
        family = _family(now)
        await store.issue_nonce("a" * 64, "portcullis-demo", None, now, later)
        await store.complete_sign_in("a" * 64, "portcullis-demo", now, family, _record(store, p, clock, 0))
        seq_before, _ = await store.head()

        def refuse(_old: RefreshRecord) -> None:
            raise Refused  # after the rotation's UPDATE stamped the row: the batch must roll back

        rotation = store.rotate_refresh(
            family.token_hash,
            "portcullis-demo",
            "c" * 64,
            now,
            lambda new, _r: _record(store, p, clock, 1),
            refuse,
        )
        unknown = store.complete_sign_in(
            "f" * 64, "portcullis-demo", now, _family(now, "d"), _record(store, p, clock, 2)
        )
        others = [store.record(_record(store, p, clock, 10 + i)) for i in range(8)]
        results = await asyncio.gather(rotation, unknown, *others, return_exceptions=True)
        assert isinstance(results[0], Refused)
        assert isinstance(results[1], NonceUnavailable) and results[1].reason == "unknown"
        seq_after, _ = await store.head()
        # each append answers its own sequence number: the eight numbers after the head, nothing skipped
        assert sorted(results[2:]) == list(range(seq_before + 1, seq_before + 9)), results
        assert seq_after == seq_before + 8  # the eight appends, nothing of the two refusals
        # The refused rotation left nothing: the token is still current and can be rotated.
        found = await store.find_refresh(family.token_hash)
        assert found is not None and await store.refresh_usable(family.token_hash, now)
        assert await store.find_refresh("c" * 64) is None


def _family(now: Any, tag: str = "b") -> RefreshRecord:
    return RefreshRecord(
        token_hash=tag * 64,
        family_id=tag * 16,
        client_id="portcullis-demo",
        subject="did:pkh:eip155:1:0x0000000000000000000000000000000000000001",
        address="0x0000000000000000000000000000000000000001",
        chain_id=1,
        scope="openid",
        auth_time=now,
        issued_at=now,
        expires_at=now + timedelta(days=1),
    )


@pytest.mark.parametrize("batch_max", [1])
async def test_batch_of_one_still_chains(database_url: str, tmp_path: Path, batch_max: int) -> None:
    """The bound on a batch's size holds (here 1: one transaction per append) and the chain is the same."""
    clock = FakeClock()
    settings = make_settings(tmp_path, database_url=database_url, audit_batch_max=batch_max)
    async with running_app(settings, clock) as h:
        p = h.app.state.provider
        calls = _counting(p.store)
        await asyncio.gather(*(p.store.record(_record(p.store, p, clock, i)) for i in range(6)))
        assert len(calls) == 6
        report = await verify_log(p.audit_log, p.checkpoint_store, FileSink(settings.audit_checkpoint_file))
        assert report.ok, report.finding
