"""The delegations store on SQLite and PostgreSQL: one message makes one delegation, a revocation happens
once however many race, and a chain revocation ends every delegation of the wallet in the transaction that
ends its sessions, one ``delegation.revoked`` entry each."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from app.audit import events
from app.oauth.provider import Provider
from app.storage.delegation_records import DelegationExists, DelegationRecord
from app.storage.records import AuditRecord, ChainEventKey, SubjectRevocation
from tests.audit.tamper import rows
from tests.conftest import FakeClock, make_settings, running_app

SUBJECT = "did:pkh:eip155:31337:0x00000000000000000000000000000000000000B2"


def record(p: Provider, n: int) -> DelegationRecord:
    now = p.clock.now()
    return DelegationRecord(
        delegation_id=f"d{n}",
        message_hash=f"{n:064x}",
        subject=SUBJECT,
        address=SUBJECT[-42:],
        chain_id=31337,
        delegate_jkt=f"{'k' * 42}{n}",
        scope="perps:trade",
        authorization_details="[]",
        message="...",
        created_at=now,
        expires_at=now + timedelta(days=1),
    )


def entry(p: Provider, kind: str, **data: str) -> AuditRecord:
    return p.auditor.event(kind, events.SUCCESS, events.RequestMeta(), actor=SUBJECT, data=dict(data))


async def test_create_revoke_and_the_chain(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    async with running_app(settings, FakeClock()) as h:
        p: Provider = h.app.state.provider
        now = p.clock.now()
        for n in range(3):
            await p.delegations.create(record(p, n), entry(p, events.DELEGATION_CREATED))
        with pytest.raises(DelegationExists):
            await p.delegations.create(record(p, 0), entry(p, events.DELEGATION_CREATED))
        assert [r.delegation_id for r in await p.delegations.for_subject(SUBJECT)] == ["d0", "d1", "d2"]
        assert await p.delegations.active("d0", now)

        won = await asyncio.gather(
            *(
                p.delegations.revoke("d0", now, "revoked_by_user", entry(p, events.DELEGATION_REVOKED))
                for _ in range(4)
            )
        )
        assert sorted(won) == [False, False, False, True]
        assert not await p.delegations.active("d0", now)
        assert not await p.delegations.revoke(
            "d1", now, "x", entry(p, events.DELEGATION_REVOKED), subject="other"
        )

        def ended(delegation_id: str, jkt: str) -> AuditRecord:
            return entry(p, events.DELEGATION_REVOKED, delegation_id=delegation_id, delegate_jkt=jkt)

        revocation = SubjectRevocation(SUBJECT, now, "not_eligible", entry(p, events.SUBJECT_REVOKED), ended)
        key = ChainEventKey(31337, "0x" + "ab" * 32, 1, SUBJECT[-42:], "RecordRevoked", 7, "0x" + "cd" * 32)
        assert await p.store.record_chain_event(key, entry(p, events.CHAIN_CHANGE), revocation)
        states = {
            r.delegation_id: (r.state(now), r.revoked_reason) for r in await p.delegations.listing(SUBJECT)
        }
        assert states == {
            "d0": ("revoked", "revoked_by_user"),
            "d1": ("revoked", "not_eligible"),
            "d2": ("revoked", "not_eligible"),
        }
        h.clock.advance(86400)
        assert not await p.delegations.active("d1", h.clock.now())
        log = await rows(p.store.engine)
    types = [r["type"] for r in log if r["actor"] == SUBJECT]
    assert types.count("delegation.revoked") == 3 and types.count("delegation.created") == 3
    assert types[-4:] == ["chain.change", "token.subject_revoked", "delegation.revoked", "delegation.revoked"]
