"""MfaService end to end on SQLite and PostgreSQL: enrol, step up, replay, counters, recovery, removal, and
the audit entry each writes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select

from app.mfa import errors
from app.mfa.acr import ACR_WALLET, ACR_WALLET_MFA
from app.mfa.service import MfaSettings, Verification
from app.storage.models_mfa import MfaChallenge, MfaFactor, MfaRecoveryCode
from tests.mfa.authenticator import UP, SoftwareAuthenticator, b64url
from tests.mfa.conftest import ORIGIN, RP, Rig, assert_chain_intact, audit_entries, new_subject
from tests.mfa.test_rfc6238_totp import code_at

RACERS = 8


async def _enrolled_totp(rig: Rig, subject: str) -> tuple[str, str]:
    """A confirmed TOTP factor; returns (factor_id, secret). The clock moves one step on."""
    enrolment = await rig.service.enrol_totp(subject, recent_strong_auth=True)
    await rig.service.confirm_totp(
        subject, enrolment.factor_id, code_at(enrolment.secret, rig.clock.now()), recent_strong_auth=True
    )
    rig.clock.advance(30)
    return enrolment.factor_id, enrolment.secret


async def _enrolled_passkey(rig: Rig, subject: str, auth: SoftwareAuthenticator) -> str:
    options = await rig.service.begin_webauthn_registration(subject, recent_strong_auth=True)
    info = await rig.service.finish_webauthn_registration(
        subject, auth.create(options, ORIGIN), recent_strong_auth=True, label="YubiKey 5"
    )
    return info.factor_id


async def _types(rig: Rig) -> list[tuple[str, str, str | None]]:
    return [(e["type"], e["outcome"], e["reason"]) for e in await audit_entries(rig.engine)]


# -- TOTP ---------------------------------------------------------------------------------------------------


async def test_totp_enrol_confirm_verify_and_replay(rig: Rig) -> None:
    subject = new_subject()
    enrolment = await rig.service.enrol_totp(subject, recent_strong_auth=True, label="Phone\n app")
    assert enrolment.otpauth_uri.startswith("otpauth://totp/Portcullis:")
    assert f"secret={enrolment.secret}" in enrolment.otpauth_uri
    assert enrolment.expires_at == rig.clock.now() + MfaSettings(rp=RP).enrolment_ttl
    (pending,) = await rig.service.factors(subject)
    assert pending.kind == "totp" and not pending.confirmed and pending.label == "Phone app"
    # a pending factor is not a second factor yet
    with pytest.raises(errors.NoFactorEnrolled):
        await rig.service.verify_totp(subject, code_at(enrolment.secret, rig.clock.now()))

    wrong = "000000" if code_at(enrolment.secret, rig.clock.now()) != "000000" else "111111"
    with pytest.raises(errors.InvalidCode):
        await rig.service.confirm_totp(subject, enrolment.factor_id, wrong, recent_strong_auth=True)
    first = code_at(enrolment.secret, rig.clock.now())
    info = await rig.service.confirm_totp(subject, enrolment.factor_id, first, recent_strong_auth=True)
    assert info.confirmed and await rig.service.has_second_factor(subject)

    # The confirming code was accepted once: it cannot step up.
    with pytest.raises(errors.ReplayedCode):
        await rig.service.verify_totp(subject, first)
    rig.clock.advance(30)
    code = code_at(enrolment.secret, rig.clock.now())
    result = await rig.service.verify_totp(subject, f"{code[:3]} {code[3:]}")
    assert result == Verification(subject, "totp", enrolment.factor_id, ("otp",), rig.clock.now())
    assert result.session_amr() == ("siwe", "otp", "mfa") and result.acr == ACR_WALLET_MFA
    rig.clock.advance(5)
    with pytest.raises(errors.ReplayedCode):
        await rig.service.verify_totp(subject, code)
    with pytest.raises(errors.InvalidCode):
        await rig.service.verify_totp(subject, "12345")

    assert await _types(rig) == [
        ("mfa.enrolment_started", "success", None),
        ("mfa.failed", "failure", "no_factor_enrolled"),
        ("mfa.failed", "failure", "invalid_code"),
        ("mfa.enrolled", "success", None),
        ("mfa.replayed", "failure", "replayed_code"),
        ("mfa.verified", "success", None),
        ("mfa.replayed", "failure", "replayed_code"),
        ("mfa.failed", "failure", "invalid_code"),
    ]
    entries = await audit_entries(rig.engine)
    assert {e["actor"] for e in entries} == {subject}
    assert entries[5]["data"] == {"factor_id": enrolment.factor_id, "kind": "totp"}
    # The secret is nowhere in the clear: not in the factor row, not in the log.
    async with rig.engine.connect() as conn:
        rows = (await conn.execute(select(MfaFactor.__table__))).all()
    dump = repr(rows) + json.dumps(entries, default=str)
    assert enrolment.secret not in dump and enrolment.secret.encode() not in rows[0].secret_encrypted
    assert first not in json.dumps([e["data"] for e in entries])
    assert await assert_chain_intact(rig.engine) == len(entries)


async def test_concurrent_replays_of_one_code_have_one_winner(rig: Rig) -> None:
    subject = new_subject()
    _, secret = await _enrolled_totp(rig, subject)
    code = code_at(secret, rig.clock.now())
    results = await asyncio.gather(
        *(rig.service.verify_totp(subject, code) for _ in range(RACERS)), return_exceptions=True
    )
    assert sum(isinstance(r, Verification) for r in results) == 1
    assert sum(isinstance(r, errors.ReplayedCode) for r in results) == RACERS - 1
    types = [t for t, _, _ in await _types(rig)]
    assert types.count("mfa.verified") == 1 and types.count("mfa.replayed") == RACERS - 1


async def test_totp_enrolment_needs_recent_strong_auth(rig: Rig) -> None:
    subject = new_subject()
    with pytest.raises(errors.StrongAuthenticationRequired) as refused:
        await rig.service.enrol_totp(subject, recent_strong_auth=False)
    assert refused.value.acr_values == (ACR_WALLET,) and refused.value.max_age == 300
    assert await rig.service.factors(subject) == []
    factor_id, _ = await _enrolled_totp(rig, subject)
    # Once a factor exists, "strong" means wallet + factor.
    with pytest.raises(errors.StrongAuthenticationRequired) as refused:
        await rig.service.enrol_totp(subject, recent_strong_auth=False)
    assert refused.value.acr_values == (ACR_WALLET_MFA,)
    with pytest.raises(errors.StrongAuthenticationRequired):
        await rig.service.remove_factor(subject, factor_id, recent_strong_auth=False)
    with pytest.raises(errors.StrongAuthenticationRequired):
        await rig.service.issue_recovery_codes(subject, recent_strong_auth=False)
    with pytest.raises(errors.StrongAuthenticationRequired):
        await rig.service.begin_webauthn_registration(subject, recent_strong_auth=False)
    assert len(await rig.service.factors(subject)) == 1
    reasons = [r for t, _, r in await _types(rig) if t == "mfa.failed"]
    assert reasons == ["insufficient_user_authentication"] * 5


async def test_confirmation_must_come_in_time(rig: Rig) -> None:
    subject = new_subject()
    enrolment = await rig.service.enrol_totp(subject, recent_strong_auth=True)
    rig.clock.advance(10 * 60)
    with pytest.raises(errors.EnrolmentExpired):
        await rig.service.confirm_totp(
            subject, enrolment.factor_id, code_at(enrolment.secret, rig.clock.now()), recent_strong_auth=True
        )
    with pytest.raises(errors.UnknownFactor):
        await rig.service.confirm_totp(subject, "not-a-factor", "123456", recent_strong_auth=True)
    assert await rig.service.purge_stale() == 1
    assert await rig.service.factors(subject) == []


async def test_factor_limit(rig: Rig) -> None:
    service = rig.with_settings(MfaSettings(rp=RP, max_factors=2))
    subject = new_subject()
    await service.enrol_totp(subject, recent_strong_auth=True)
    await service.enrol_totp(subject, recent_strong_auth=True)
    with pytest.raises(errors.TooManyFactors):
        await service.enrol_totp(subject, recent_strong_auth=True)
    with pytest.raises(errors.TooManyFactors):
        await service.begin_webauthn_registration(subject, recent_strong_auth=True)


async def test_subjects_must_be_wallets(rig: Rig) -> None:
    with pytest.raises(ValueError):
        await rig.service.enrol_totp("user@example.com", recent_strong_auth=True)


# -- WebAuthn -----------------------------------------------------------------------------------------------


async def test_passkey_registration_and_step_up(rig: Rig) -> None:
    subject = new_subject()
    auth = SoftwareAuthenticator()
    options = await rig.service.begin_webauthn_registration(subject, recent_strong_auth=True)
    assert (
        options["rp"]["id"] == RP.id and options["authenticatorSelection"]["userVerification"] == "required"
    )
    info = await rig.service.finish_webauthn_registration(
        subject, auth.create(options, ORIGIN), recent_strong_auth=True, label="YubiKey 5"
    )
    assert info.kind == "webauthn" and info.confirmed and info.label == "YubiKey 5"

    options = await rig.service.begin_webauthn_assertion(subject)
    assert options["userVerification"] == "required"
    assert options["allowCredentials"] == [{"id": b64url(auth.credential_id), "type": "public-key"}]
    result = await rig.service.finish_webauthn_assertion(subject, auth.get(options, ORIGIN))
    assert result.method == "webauthn" and result.factor_id == info.factor_id
    assert result.session_amr() == ("siwe", "hwk", "user", "mfa") and result.acr == ACR_WALLET_MFA
    (stored,) = await rig.store.factors(subject)
    assert stored.sign_count == 1 and stored.public_key == auth.cose_key()

    # Registering it again: excluded in the options, refused if sent anyway.
    options = await rig.service.begin_webauthn_registration(subject, recent_strong_auth=True)
    assert options["excludeCredentials"] == [{"id": b64url(auth.credential_id), "type": "public-key"}]
    with pytest.raises(errors.CredentialExists):
        await rig.service.finish_webauthn_registration(
            subject, auth.create(options, ORIGIN), recent_strong_auth=True
        )
    types = await _types(rig)
    assert types == [
        ("mfa.enrolment_started", "success", None),
        ("mfa.enrolled", "success", None),
        ("mfa.challenge_issued", "success", None),
        ("mfa.verified", "success", None),
        ("mfa.enrolment_started", "success", None),
        ("mfa.failed", "failure", "credential_exists"),
    ]
    entries = await audit_entries(rig.engine)
    assert entries[1]["data"]["aaguid"] == "00000000-0000-0000-0000-000000000000"
    assert await assert_chain_intact(rig.engine) == len(entries)


async def test_counter_regression_is_refused_and_audited(rig: Rig) -> None:
    subject = new_subject()
    auth = SoftwareAuthenticator(counter=10)
    await _enrolled_passkey(rig, subject, auth)
    options = await rig.service.begin_webauthn_assertion(subject)
    await rig.service.finish_webauthn_assertion(subject, auth.get(options, ORIGIN))  # counter 11
    options = await rig.service.begin_webauthn_assertion(subject)
    with pytest.raises(errors.CounterRegression):
        await rig.service.finish_webauthn_assertion(subject, auth.get(options, ORIGIN, counter=11))
    assert (await _types(rig))[-1] == ("mfa.replayed", "failure", "counter_regression")
    (stored,) = await rig.store.factors(subject)
    assert stored.sign_count == 11


async def test_concurrent_assertions_with_one_counter_value_have_one_winner(rig: Rig) -> None:
    subject = new_subject()
    auth = SoftwareAuthenticator()
    await _enrolled_passkey(rig, subject, auth)
    # A cloned authenticator: two assertions, each on its own challenge, with the same counter value.
    responses = [
        auth.get(await rig.service.begin_webauthn_assertion(subject), ORIGIN, counter=1)
        for _ in range(RACERS)
    ]
    results = await asyncio.gather(
        *(rig.service.finish_webauthn_assertion(subject, r) for r in responses), return_exceptions=True
    )
    assert sum(isinstance(r, Verification) for r in results) == 1
    assert sum(isinstance(r, errors.CounterRegression) for r in results) == RACERS - 1


async def test_challenges_are_single_use_short_lived_and_bound(rig: Rig) -> None:
    alice, bob = new_subject(), new_subject()
    auth = SoftwareAuthenticator()
    await _enrolled_passkey(rig, alice, auth)
    options = await rig.service.begin_webauthn_assertion(alice)
    response = auth.get(options, ORIGIN)
    await rig.service.finish_webauthn_assertion(alice, response)
    with pytest.raises(errors.ChallengeUnavailable):  # the same response again
        await rig.service.finish_webauthn_assertion(alice, response)

    options = await rig.service.begin_webauthn_assertion(alice)
    with pytest.raises(errors.ChallengeUnavailable):  # alice's challenge, presented for bob
        await rig.service.finish_webauthn_assertion(bob, auth.get(options, ORIGIN))

    options = await rig.service.begin_webauthn_assertion(alice)
    with pytest.raises(errors.ChallengeUnavailable):  # an assertion challenge cannot finish a registration
        await rig.service.finish_webauthn_registration(
            alice,
            SoftwareAuthenticator().create({**options, "rp": {"id": RP.id}, "user": {"id": ""}}, ORIGIN),
            recent_strong_auth=True,
        )

    options = await rig.service.begin_webauthn_assertion(alice)
    rig.clock.advance(5 * 60)
    with pytest.raises(errors.ChallengeUnavailable):  # expired
        await rig.service.finish_webauthn_assertion(alice, auth.get(options, ORIGIN))

    async with rig.engine.connect() as conn:
        stored = (await conn.execute(select(MfaChallenge.challenge_hash))).scalars().all()
    assert options["challenge"] not in stored and len(stored) == 5  # hashes only


@pytest.mark.parametrize(
    ("tweak", "error", "reason"),
    [
        ({"origin": "https://evil.example"}, errors.OriginMismatch, "origin_mismatch"),
        ({"rp_id": "evil.example"}, errors.RpIdMismatch, "rp_id_mismatch"),
        ({"flags": UP}, errors.UserVerificationRequired, "user_verification_required"),
        ({"tamper": True}, errors.InvalidCredential, "invalid_credential"),
    ],
)
async def test_assertion_refusals_are_audited(
    rig: Rig, tweak: dict[str, Any], error: type[errors.MfaError], reason: str
) -> None:
    subject = new_subject()
    auth = SoftwareAuthenticator()
    await _enrolled_passkey(rig, subject, auth)
    options = await rig.service.begin_webauthn_assertion(subject)
    tweak = dict(tweak)  # the parameter dict is shared by both backends' runs
    origin = tweak.pop("origin", ORIGIN)
    with pytest.raises(error):
        await rig.service.finish_webauthn_assertion(subject, auth.get(options, origin, **tweak))
    assert (await _types(rig))[-1] == ("mfa.failed", "failure", reason)


async def test_unknown_passkeys_are_refused(rig: Rig) -> None:
    alice, bob = new_subject(), new_subject()
    alice_key, bob_key = SoftwareAuthenticator(), SoftwareAuthenticator()
    await _enrolled_passkey(rig, alice, alice_key)
    await _enrolled_passkey(rig, bob, bob_key)
    options = await rig.service.begin_webauthn_assertion(alice)
    with pytest.raises(errors.UnknownCredential):  # bob's passkey on alice's step-up
        await rig.service.finish_webauthn_assertion(alice, bob_key.get(options, ORIGIN))
    with pytest.raises(errors.NoFactorEnrolled):
        await rig.service.begin_webauthn_assertion(new_subject())


async def test_registration_refusals(rig: Rig) -> None:
    subject = new_subject()
    options = await rig.service.begin_webauthn_registration(subject, recent_strong_auth=True)
    with pytest.raises(errors.UserVerificationRequired):
        await rig.service.finish_webauthn_registration(
            subject, SoftwareAuthenticator().create(options, ORIGIN, flags=0x41), recent_strong_auth=True
        )
    options = await rig.service.begin_webauthn_registration(subject, recent_strong_auth=True)
    with pytest.raises(errors.OriginMismatch):
        await rig.service.finish_webauthn_registration(
            subject, SoftwareAuthenticator().create(options, "https://evil.example"), recent_strong_auth=True
        )
    with pytest.raises(errors.MalformedCredential):
        await rig.service.finish_webauthn_registration(subject, "{not json", recent_strong_auth=True)
    assert await rig.service.factors(subject) == []


# -- recovery codes and removal -----------------------------------------------------------------------------


async def test_recovery_codes_single_use(rig: Rig) -> None:
    subject = new_subject()
    with pytest.raises(errors.NoFactorEnrolled):
        await rig.service.issue_recovery_codes(subject, recent_strong_auth=True)
    await _enrolled_totp(rig, subject)
    codes = await rig.service.issue_recovery_codes(subject, recent_strong_auth=True)
    assert len(codes) == 10
    result = await rig.service.use_recovery_code(subject, codes[0].lower())
    assert result.method == "recovery" and result.acr == ACR_WALLET_MFA
    with pytest.raises(errors.InvalidCode):
        await rig.service.use_recovery_code(subject, codes[0])
    with pytest.raises(errors.InvalidCode):
        await rig.service.use_recovery_code(new_subject(), codes[1])  # another subject's code
    with pytest.raises(errors.InvalidCode):
        await rig.service.use_recovery_code(subject, "not a code")
    results = await asyncio.gather(
        *(rig.service.use_recovery_code(subject, codes[2]) for _ in range(RACERS)), return_exceptions=True
    )
    assert sum(isinstance(r, Verification) for r in results) == 1
    # New codes void the old ones.
    fresh = await rig.service.issue_recovery_codes(subject, recent_strong_auth=True)
    with pytest.raises(errors.InvalidCode):
        await rig.service.use_recovery_code(subject, codes[3])
    await rig.service.use_recovery_code(subject, fresh[0])
    async with rig.engine.connect() as conn:
        stored = repr((await conn.execute(select(MfaRecoveryCode.__table__))).all())
    assert not any(code in stored or code.replace("-", "") in stored for code in codes + fresh)
    entries = await audit_entries(rig.engine)
    issued = [e for e in entries if e["type"] == "mfa.recovery_codes_issued"]
    assert [e["data"] for e in issued] == [{"kind": "recovery", "count": 10}] * 2
    assert await assert_chain_intact(rig.engine) == len(entries)


async def test_remove_factor(rig: Rig) -> None:
    subject = new_subject()
    totp_id, _ = await _enrolled_totp(rig, subject)
    passkey_id = await _enrolled_passkey(rig, subject, SoftwareAuthenticator())
    codes = await rig.service.issue_recovery_codes(subject, recent_strong_auth=True)
    with pytest.raises(errors.UnknownFactor):
        await rig.service.remove_factor(subject, "nope", recent_strong_auth=True)
    with pytest.raises(errors.UnknownFactor):
        await rig.service.remove_factor(new_subject(), totp_id, recent_strong_auth=True)
    await rig.service.remove_factor(subject, totp_id, recent_strong_auth=True)
    assert [f.factor_id for f in await rig.service.factors(subject)] == [passkey_id]
    await rig.service.use_recovery_code(subject, codes[0])
    await rig.service.remove_factor(subject, passkey_id, recent_strong_auth=True)
    with pytest.raises(errors.InvalidCode):  # nothing left to recover: the codes went with the last factor
        await rig.service.use_recovery_code(subject, codes[1])
    removed = [e for e in await audit_entries(rig.engine) if e["type"] == "mfa.removed"]
    assert [e["data"] for e in removed] == [
        {"factor_id": totp_id, "kind": "totp"},
        {"factor_id": passkey_id, "kind": "webauthn"},
    ]
