"""SqlFactorStore on SQLite and PostgreSQL: conditional updates, single use under concurrency, audit rows."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.audit.events import SUCCESS, RequestMeta
from app.storage.models import AuditEntry
from app.storage.models_mfa import ChallengeRecord, FactorRecord, MfaChallenge, MfaFactor
from app.storage.records import AuditRecord
from tests.mfa.conftest import Rig, new_subject

RACERS = 10


def _audit(rig: Rig, type: str = "mfa.test") -> AuditRecord:
    return rig.service.auditor.event(type, SUCCESS, RequestMeta())


def _totp(factor_id: str, rig: Rig, *, confirmed: bool = True) -> FactorRecord:
    now = rig.clock.now()
    return FactorRecord(
        factor_id=factor_id,
        kind="totp",
        label="app",
        created_at=now,
        confirmed_at=now if confirmed else None,
        secret_encrypted=b"sealed",
    )


def _passkey(factor_id: str, rig: Rig, credential_id: str, sign_count: int = 0) -> FactorRecord:
    now = rig.clock.now()
    return FactorRecord(
        factor_id=factor_id,
        kind="webauthn",
        label="key",
        created_at=now,
        confirmed_at=now,
        credential_id=credential_id,
        public_key=b"cose",
        sign_count=sign_count,
        aaguid="00000000-0000-0000-0000-000000000000",
    )


async def _audit_count(rig: Rig) -> int:
    async with rig.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(AuditEntry))).scalar_one())


async def test_add_list_and_duplicate_credential(rig: Rig) -> None:
    subject, other = new_subject(), new_subject()
    assert await rig.store.add_factor(subject, _passkey("p1", rig, "cred-1"), _audit(rig))
    assert await rig.store.add_factor(subject, _totp("t1", rig, confirmed=False), _audit(rig))
    # WebAuthn L2 7.1 step 22: a credential id is registered once, whoever asks.
    assert not await rig.store.add_factor(other, _passkey("p2", rig, "cred-1"), _audit(rig))
    listed = await rig.store.factors(subject)
    assert [f.factor_id for f in listed] == ["p1", "t1"]
    assert listed[0].created_at == rig.clock.now() and listed[0].sign_count == 0
    assert listed[1].confirmed_at is None and listed[1].secret_encrypted == b"sealed"
    assert await rig.store.factors(other) == []
    assert await _audit_count(rig) == 2  # the refused insert left no audit row


async def test_totp_step_only_grows_and_confirms(rig: Rig) -> None:
    subject = new_subject()
    await rig.store.add_factor(subject, _totp("t1", rig, confirmed=False), _audit(rig))
    now = rig.clock.now()
    assert await rig.store.update_after_use("t1", now=now, audit=_audit(rig), last_step=100)
    (factor,) = await rig.store.factors(subject)
    assert factor.confirmed_at == now and factor.last_step == 100 and factor.last_used_at == now
    assert not await rig.store.update_after_use("t1", now=now, audit=_audit(rig), last_step=100)
    assert not await rig.store.update_after_use("t1", now=now, audit=_audit(rig), last_step=99)
    rig.clock.advance(30)
    assert await rig.store.update_after_use("t1", now=rig.clock.now(), audit=_audit(rig), last_step=101)
    (factor,) = await rig.store.factors(subject)
    assert factor.confirmed_at == now  # confirmed once, not moved by later uses
    assert factor.last_step == 101
    assert await _audit_count(rig) == 3
    with pytest.raises(ValueError):
        await rig.store.update_after_use("t1", now=now, audit=_audit(rig))
    with pytest.raises(ValueError):
        await rig.store.update_after_use("t1", now=now, audit=_audit(rig), last_step=1, sign_count=1)


async def test_sign_count_grows_or_stays_zero(rig: Rig) -> None:
    subject = new_subject()
    await rig.store.add_factor(subject, _passkey("zero", rig, "c0"), _audit(rig))
    await rig.store.add_factor(subject, _passkey("five", rig, "c5", sign_count=5), _audit(rig))
    now = rig.clock.now()
    assert await rig.store.update_after_use("zero", now=now, audit=_audit(rig), sign_count=0)
    assert await rig.store.update_after_use("zero", now=now, audit=_audit(rig), sign_count=0)
    assert await rig.store.update_after_use("zero", now=now, audit=_audit(rig), sign_count=3)
    assert not await rig.store.update_after_use("zero", now=now, audit=_audit(rig), sign_count=0)
    assert not await rig.store.update_after_use("five", now=now, audit=_audit(rig), sign_count=5)
    assert not await rig.store.update_after_use("five", now=now, audit=_audit(rig), sign_count=0)
    assert await rig.store.update_after_use("five", now=now, audit=_audit(rig), sign_count=6)
    counts = {f.factor_id: f.sign_count for f in await rig.store.factors(subject)}
    assert counts == {"zero": 3, "five": 6}


async def test_concurrent_uses_of_one_step_have_one_winner(rig: Rig) -> None:
    subject = new_subject()
    await rig.store.add_factor(subject, _totp("t1", rig), _audit(rig))
    results = await asyncio.gather(
        *(
            rig.store.update_after_use("t1", now=rig.clock.now(), audit=_audit(rig), last_step=500)
            for _ in range(RACERS)
        )
    )
    assert sorted(results) == [False] * (RACERS - 1) + [True]
    assert await _audit_count(rig) == 2


async def test_recovery_codes_single_use_under_concurrency(rig: Rig) -> None:
    subject, other = new_subject(), new_subject()
    now = rig.clock.now()
    await rig.store.replace_recovery_codes(subject, ["a" * 64, "b" * 64], now, _audit(rig))
    assert not await rig.store.use_recovery_code(other, "a" * 64, now, _audit(rig))  # bound to its subject
    results = await asyncio.gather(
        *(rig.store.use_recovery_code(subject, "a" * 64, now, _audit(rig)) for _ in range(RACERS))
    )
    assert results.count(True) == 1
    await rig.store.replace_recovery_codes(subject, ["c" * 64], now, _audit(rig))
    assert not await rig.store.use_recovery_code(subject, "b" * 64, now, _audit(rig))  # voided
    assert await rig.store.use_recovery_code(subject, "c" * 64, now, _audit(rig))
    assert await _audit_count(rig) == 4


async def test_remove_factor_and_recovery_codes_follow_the_last_one(rig: Rig) -> None:
    subject = new_subject()
    now = rig.clock.now()
    await rig.store.add_factor(subject, _totp("t1", rig), _audit(rig))
    await rig.store.add_factor(subject, _passkey("p1", rig, "cred-p1"), _audit(rig))
    await rig.store.replace_recovery_codes(subject, ["d" * 64, "e" * 64], now, _audit(rig))
    before = await _audit_count(rig)
    assert not await rig.store.remove_factor(subject, "nope", _audit(rig))
    assert not await rig.store.remove_factor(new_subject(), "t1", _audit(rig))  # not theirs
    assert await _audit_count(rig) == before  # refused removals roll their entry back
    assert await rig.store.remove_factor(subject, "t1", _audit(rig))
    assert await rig.store.use_recovery_code(subject, "d" * 64, now, _audit(rig))  # a factor is left
    assert await rig.store.remove_factor(subject, "p1", _audit(rig))
    assert not await rig.store.use_recovery_code(subject, "e" * 64, now, _audit(rig))
    assert await rig.store.factors(subject) == []


async def test_concurrent_removal_of_the_last_two_factors_clears_codes(rig: Rig) -> None:
    subject = new_subject()
    now = rig.clock.now()
    await rig.store.add_factor(subject, _totp("t1", rig), _audit(rig))
    await rig.store.add_factor(subject, _totp("t2", rig), _audit(rig))
    await rig.store.replace_recovery_codes(subject, ["f" * 64], now, _audit(rig))
    assert all(
        await asyncio.gather(
            rig.store.remove_factor(subject, "t1", _audit(rig)),
            rig.store.remove_factor(subject, "t2", _audit(rig)),
        )
    )
    assert not await rig.store.use_recovery_code(subject, "f" * 64, now, _audit(rig))


async def test_challenges_are_single_use_and_bound(rig: Rig) -> None:
    subject = new_subject()
    now = rig.clock.now()
    record = ChallengeRecord("h" * 64, subject, "webauthn.get", now, now + timedelta(minutes=5))
    await rig.store.put_challenge(record)
    assert not await rig.store.consume_challenge("h" * 64, new_subject(), "webauthn.get", now)
    assert not await rig.store.consume_challenge("h" * 64, subject, "webauthn.create", now)
    assert not await rig.store.consume_challenge(
        "h" * 64, subject, "webauthn.get", now + timedelta(minutes=5)
    )
    results = await asyncio.gather(
        *(rig.store.consume_challenge("h" * 64, subject, "webauthn.get", now) for _ in range(RACERS))
    )
    assert results.count(True) == 1
    assert await _audit_count(rig) == 0  # put without an audit entry writes none


async def test_purge_stale(rig: Rig) -> None:
    subject = new_subject()
    now = rig.clock.now()
    await rig.store.put_challenge(
        ChallengeRecord("1" * 64, subject, "webauthn.get", now, now + timedelta(minutes=5))
    )
    await rig.store.put_challenge(
        ChallengeRecord("2" * 64, subject, "webauthn.get", now, now + timedelta(minutes=1))
    )
    await rig.store.add_factor(subject, _totp("pending", rig, confirmed=False), _audit(rig))
    await rig.store.add_factor(subject, _totp("done", rig), _audit(rig))
    later = now + timedelta(minutes=2)
    assert await rig.store.purge_stale(later, pending_before=now - timedelta(seconds=1)) == 1  # a challenge
    assert await rig.store.purge_stale(later, pending_before=later) == 1  # now the pending enrolment
    assert [f.factor_id for f in await rig.store.factors(subject)] == ["done"]
    async with rig.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(MfaChallenge))).scalar_one() == 1
        assert (await conn.execute(select(func.count()).select_from(MfaFactor))).scalar_one() == 1
