"""WebAuthn L2 sections 7.1 and 7.2 against a software authenticator: registration, assertion, and each
check failing on its own with its own error."""

from __future__ import annotations

import os
from typing import Any

import pytest

from app.mfa import errors
from app.mfa.webauthn import (
    RelyingParty,
    authentication_options,
    challenge_of,
    counter_regressed,
    credential_id_of,
    registration_options,
    user_handle,
    verify_authentication,
    verify_registration,
)
from tests.mfa.authenticator import AT, UP, UV, SoftwareAuthenticator, b64url, unb64url

RP = RelyingParty(id="auth.example.test", name="Portcullis", origins=("https://auth.example.test",))
ORIGIN = RP.origins[0]
SUBJECT = "did:pkh:eip155:1:0x71C7656EC7ab88b098defB751B7401B5f6d8976F"
SECRET = b"s" * 32


def _register(auth: SoftwareAuthenticator, **create: Any) -> tuple[bytes, dict[str, Any]]:
    challenge = os.urandom(32)
    options = registration_options(SUBJECT, RP, [], challenge, user_handle(SUBJECT, SECRET))
    return challenge, auth.create(options, create.pop("origin", ORIGIN), **create)


def _registered(auth: SoftwareAuthenticator) -> bytes:
    challenge, response = _register(auth)
    return verify_registration(response, challenge=challenge, rp=RP).public_key


def _assert(auth: SoftwareAuthenticator, **get: Any) -> tuple[bytes, dict[str, Any]]:
    challenge = os.urandom(32)
    options = authentication_options(RP, [auth.credential_id], challenge)
    return challenge, auth.get(options, get.pop("origin", ORIGIN), **get)


def test_registration_options_require_user_verification_and_hide_the_address() -> None:
    handle = user_handle(SUBJECT, SECRET)
    options = registration_options(SUBJECT, RP, [b"\x01\x02"], b"c" * 32, handle)
    assert options["rp"] == {"id": RP.id, "name": RP.name}
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert unb64url(options["user"]["id"]) == handle and len(handle) == 32
    assert "0x71C7" not in options["user"]["id"]  # the handle is opaque (WebAuthn L2 14.6.1)
    assert options["excludeCredentials"] == [{"id": b64url(b"\x01\x02"), "type": "public-key"}]
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -8, -257]
    assert user_handle(SUBJECT, b"other" * 8) != handle
    assert user_handle(SUBJECT.replace(":1:", ":137:"), SECRET) != handle


def test_registration_with_attestation_none() -> None:
    auth = SoftwareAuthenticator()
    challenge, response = _register(auth)
    assert challenge_of(response) == challenge and credential_id_of(response) == auth.credential_id
    new = verify_registration(response, challenge=challenge, rp=RP)
    assert new.credential_id == auth.credential_id
    assert new.public_key == auth.cose_key()
    assert new.sign_count == 0 and new.user_verified
    assert new.aaguid == "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("tweak", "error"),
    [
        ({"origin": "https://evil.example"}, errors.OriginMismatch),
        ({"origin": "http://auth.example.test"}, errors.OriginMismatch),
        ({"cross_origin": True}, errors.OriginMismatch),
        ({"rp_id": "evil.example"}, errors.RpIdMismatch),
        ({"flags": UP | AT}, errors.UserVerificationRequired),
        ({"flags": UV | AT}, errors.UserPresenceRequired),
        ({"challenge": b"x" * 32}, errors.ChallengeUnavailable),
        ({"ceremony": "webauthn.get"}, errors.InvalidCredential),
    ],
)
def test_registration_refusals(tweak: dict[str, Any], error: type[errors.MfaError]) -> None:
    challenge, response = _register(SoftwareAuthenticator(), **tweak)
    with pytest.raises(error):
        verify_registration(response, challenge=challenge, rp=RP)


def test_registration_malformed() -> None:
    challenge, response = _register(SoftwareAuthenticator())
    with pytest.raises(errors.MalformedCredential):
        verify_registration({"id": "x"}, challenge=challenge, rp=RP)
    broken = {**response, "response": {**response["response"], "attestationObject": b64url(b"\xa1")}}
    with pytest.raises(errors.MalformedCredential):
        verify_registration(broken, challenge=challenge, rp=RP)
    with pytest.raises(errors.MalformedCredential):
        challenge_of({"response": {"clientDataJSON": "!!"}})
    with pytest.raises(errors.MalformedCredential):
        credential_id_of({"rawId": ""})


def test_assertion_verifies_and_the_counter_grows() -> None:
    auth = SoftwareAuthenticator(counter=5)
    public_key = _registered(auth)
    challenge, response = _assert(auth)
    result = verify_authentication(
        response,
        challenge=challenge,
        rp=RP,
        public_key=public_key,
        stored_sign_count=5,
        handle=user_handle(SUBJECT, SECRET),
    )
    assert result.credential_id == auth.credential_id and result.sign_count == 6 and result.user_verified


@pytest.mark.parametrize("counter", [7, 6])
def test_counter_regression_is_refused(counter: int) -> None:
    auth = SoftwareAuthenticator(counter=7)
    public_key = _registered(auth)
    challenge, response = _assert(auth, counter=counter)  # a clone replaying an old or equal counter
    with pytest.raises(errors.CounterRegression):
        verify_authentication(
            response, challenge=challenge, rp=RP, public_key=public_key, stored_sign_count=7
        )


def test_authenticators_without_a_counter_stay_at_zero() -> None:
    auth = SoftwareAuthenticator(counter_step=0)
    public_key = _registered(auth)
    for _ in range(2):
        challenge, response = _assert(auth)
        result = verify_authentication(
            response, challenge=challenge, rp=RP, public_key=public_key, stored_sign_count=0
        )
        assert result.sign_count == 0
    assert counter_regressed(0, 0) is False
    assert counter_regressed(3, 0) is True  # a counter that existed may not drop to zero
    assert counter_regressed(0, 1) is False


@pytest.mark.parametrize(
    ("tweak", "error"),
    [
        ({"origin": "https://auth.example.test:8443"}, errors.OriginMismatch),
        ({"cross_origin": True}, errors.OriginMismatch),
        ({"rp_id": "example.test"}, errors.RpIdMismatch),
        ({"flags": UP}, errors.UserVerificationRequired),
        ({"flags": UV}, errors.UserPresenceRequired),
        ({"challenge": b"y" * 32}, errors.ChallengeUnavailable),
        ({"tamper": True}, errors.InvalidCredential),
        ({"user_handle": b"z" * 32}, errors.UnknownCredential),
    ],
)
def test_assertion_refusals(tweak: dict[str, Any], error: type[errors.MfaError]) -> None:
    auth = SoftwareAuthenticator()
    public_key = _registered(auth)
    challenge, response = _assert(auth, **tweak)
    with pytest.raises(error):
        verify_authentication(
            response,
            challenge=challenge,
            rp=RP,
            public_key=public_key,
            stored_sign_count=0,
            handle=user_handle(SUBJECT, SECRET),
        )


def test_assertion_with_another_key_is_refused() -> None:
    auth = SoftwareAuthenticator()
    _registered(auth)
    impostor = SoftwareAuthenticator(credential_id=auth.credential_id)
    challenge, response = _assert(impostor)
    with pytest.raises(errors.InvalidCredential):
        verify_authentication(
            response, challenge=challenge, rp=RP, public_key=auth.cose_key(), stored_sign_count=0
        )


def test_failures_are_attempts_to_count() -> None:
    for cls in (
        errors.OriginMismatch,
        errors.RpIdMismatch,
        errors.UserVerificationRequired,
        errors.CounterRegression,
        errors.InvalidCredential,
        errors.ChallengeUnavailable,
        errors.InvalidCode,
        errors.ReplayedCode,
    ):
        assert issubclass(cls, errors.VerificationFailed)
