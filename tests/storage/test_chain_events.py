"""The one-entry rule for on-chain events (docs/AUDIT.md, "chain.change"), on SQLite and PostgreSQL: of
several replicas recording the same event at once exactly one writes its entry and ends the sessions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from app.audit import events
from app.oauth.provider import Provider
from app.storage.records import ChainEventKey, SubjectRevocation
from tests.audit.tamper import rows
from tests.conftest import FakeClock, make_settings, running_app

RACERS = 6
SUBJECT = "did:pkh:eip155:31337:0x00000000000000000000000000000000000000A1"


def key(log_index: int = 3, event: str = "RecordRevoked") -> ChainEventKey:
    return ChainEventKey(31337, "0x" + "ab" * 32, log_index, SUBJECT[-42:], event, 7, "0x" + "cd" * 32)


async def attempt(p: Provider, k: ChainEventKey) -> bool:
    meta = events.RequestMeta()
    entry = p.auditor.event(events.CHAIN_CHANGE, events.SUCCESS, meta, reason=k.event, actor=SUBJECT)
    ended = p.auditor.event(
        events.SUBJECT_REVOKED, events.SUCCESS, meta, reason="not_eligible", actor=SUBJECT
    )
    revocation = SubjectRevocation(SUBJECT, p.clock.now(), "not_eligible", ended)
    return await p.store.record_chain_event(k, entry, revocation)


async def test_one_of_two_replicas_records_an_event(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    async with running_app(settings, FakeClock()) as a, running_app(settings, FakeClock()) as b:
        replicas = [a.app.state.provider, b.app.state.provider] * (RACERS // 2)
        won = await asyncio.gather(*(attempt(p, key()) for p in replicas))
        assert sorted(won) == [False] * (RACERS - 1) + [True]
        # another log of the same transaction, and the reorg report of the first, are events of their own
        assert await attempt(a.app.state.provider, key(log_index=4))
        assert await attempt(b.app.state.provider, key(event="Reorged"))
        assert not await attempt(b.app.state.provider, key(log_index=4))
        log = await rows(a.app.state.provider.store.engine)
    mine = [(r["type"], r["reason"]) for r in log if r["actor"] == SUBJECT]
    assert mine == [
        ("chain.change", "RecordRevoked"),
        ("token.subject_revoked", "not_eligible"),
    ] * 2 + [("chain.change", "Reorged"), ("token.subject_revoked", "not_eligible")]
    assert all(isinstance(json.loads(r["data"]), dict) for r in log)
