"""W3C Web Authentication Level 2: passkey registration (section 7.1) and assertion (section 7.2).

CBOR, COSE keys, attestation statements and signatures are checked by the ``webauthn`` package. The checks
a caller must tell apart run here first and raise typed errors: client data type and challenge, origin,
rp id hash, user presence, user verification, user handle and the signature counter. User verification
(PIN or biometric on the authenticator) is required in both ceremonies: an assertion is a step-up, and a
credential registered without it could not give one.

Pure: the challenge, the relying party, the stored key and counter are passed in; finding the challenge
and storing the new counter atomically is the caller's (app.mfa.service).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    options_to_json_dict,
    parse_attestation_object,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorData,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from app import strict_json
from app.mfa.errors import (
    ChallengeUnavailable,
    CounterRegression,
    InvalidCredential,
    MalformedCredential,
    OriginMismatch,
    RpIdMismatch,
    UnknownCredential,
    UserPresenceRequired,
    UserVerificationRequired,
)
from app.mfa.subject import parse_subject

CHALLENGE_BYTES = 32  # WebAuthn L2 section 13.4.3: at least 16 random bytes
TIMEOUT_MS = 120_000
ALGORITHMS = (
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
)
CREATE = "webauthn.create"
GET = "webauthn.get"

Credential = str | Mapping[str, Any]  # PublicKeyCredential as JSON text or parsed (toJSON() form)

_PARSE_ERRORS = (WebAuthnException, ValueError, TypeError, KeyError)


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who we are to authenticators: the rp id (a registrable domain suffix of the origins), a display name
    and the exact origins the ceremony pages are served from (``https://auth.example.com``)."""

    id: str
    name: str
    origins: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewCredential:
    credential_id: bytes
    public_key: bytes  # COSE_Key
    sign_count: int
    aaguid: str
    user_verified: bool


@dataclass(frozen=True, slots=True)
class Assertion:
    credential_id: bytes
    sign_count: int
    user_verified: bool


def user_handle(subject: str, server_secret: bytes) -> bytes:
    """The WebAuthn ``user.id`` of a subject: 32 opaque bytes, stable, unlinkable to the address without the
    server secret (WebAuthn L2 section 14.6.1: the user handle must not identify the user)."""
    return hmac.new(
        server_secret, b"portcullis webauthn user handle v1\n" + subject.encode(), "sha256"
    ).digest()


def encode_id(credential_id: bytes) -> str:
    return bytes_to_base64url(credential_id)


def decode_id(credential_id: str) -> bytes:
    return base64url_to_bytes(credential_id)


def registration_options(
    subject: str,
    rp: RelyingParty,
    existing: Sequence[bytes],
    challenge: bytes,
    handle: bytes,
    *,
    timeout_ms: int = TIMEOUT_MS,
) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptions (JSON form) for navigator.credentials.create().

    ``existing`` credential ids are excluded, so an authenticator is not registered twice.
    """
    wallet = parse_subject(subject)
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=f"{wallet.address} (chain {wallet.chain_id})",
        user_id=handle,
        challenge=challenge,
        timeout=timeout_ms,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in existing],
        supported_pub_key_algs=list(ALGORITHMS),
    )
    return options_to_json_dict(options)


def authentication_options(
    rp: RelyingParty, allowed: Sequence[bytes], challenge: bytes, *, timeout_ms: int = TIMEOUT_MS
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptions (JSON form) for navigator.credentials.get(), UV required."""
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        timeout=timeout_ms,
        allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in allowed],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json_dict(options)


def _as_json(credential: Credential) -> str | dict[str, Any]:
    return credential if isinstance(credential, str) else dict(credential)


def challenge_of(credential: Credential) -> bytes:
    """The challenge a response answers (from its clientDataJSON), to find the stored one by."""
    try:
        body = strict_json.loads(credential) if isinstance(credential, str) else credential
        client_data = strict_json.loads(base64url_to_bytes(body["response"]["clientDataJSON"]))
        challenge = base64url_to_bytes(client_data["challenge"])
    except (*_PARSE_ERRORS, AttributeError) as exc:
        raise MalformedCredential("the response carries no readable clientDataJSON challenge") from exc
    if not challenge:
        raise MalformedCredential("the response's challenge is empty")
    return challenge


def credential_id_of(credential: Credential) -> bytes:
    """The credential id a response names (``rawId``), to find the stored public key by."""
    try:
        body = strict_json.loads(credential) if isinstance(credential, str) else credential
        raw = base64url_to_bytes(body["rawId"])
    except (*_PARSE_ERRORS, AttributeError) as exc:
        raise MalformedCredential("the response carries no readable rawId") from exc
    if not raw:
        raise MalformedCredential("the response's rawId is empty")
    return raw


def counter_regressed(stored: int, received: int) -> bool:
    """WebAuthn L2 section 6.1.1: a counter that is not zero must grow. Both zero: no counter support."""
    return (stored != 0 or received != 0) and received <= stored


def _check_client_data(raw: bytes, ceremony: str, challenge: bytes, rp: RelyingParty) -> None:
    """Section 7.1 steps 7-9 / 7.2 steps 11-13: type, challenge, origin (and no cross-origin frame)."""
    try:
        data = parse_client_data_json(raw)
    except _PARSE_ERRORS as exc:
        raise MalformedCredential("clientDataJSON is not valid") from exc
    if data.type != ceremony:
        raise InvalidCredential(f"clientDataJSON.type is not {ceremony}")
    if not hmac.compare_digest(data.challenge, challenge):
        raise ChallengeUnavailable("the response answers another challenge")
    if data.origin not in rp.origins:
        raise OriginMismatch("the ceremony ran on an origin that is not ours")
    if data.cross_origin:
        raise OriginMismatch("the ceremony ran in a cross-origin frame")


def _check_authenticator_data(auth_data: AuthenticatorData, rp: RelyingParty, require_uv: bool) -> None:
    """Section 7.1 steps 13-15 / 7.2 steps 15-17: rp id hash, user present, user verified."""
    if not hmac.compare_digest(auth_data.rp_id_hash, hashlib.sha256(rp.id.encode()).digest()):
        raise RpIdMismatch("the authenticator signed for another relying party id")
    if not auth_data.flags.up:
        raise UserPresenceRequired("the authenticator did not test user presence")
    if require_uv and not auth_data.flags.uv:
        raise UserVerificationRequired("the authenticator did not verify the user (PIN or biometric)")


def _parse_registration(credential: Credential) -> RegistrationCredential:
    try:
        return parse_registration_credential_json(_as_json(credential))
    except _PARSE_ERRORS as exc:
        raise MalformedCredential("not a PublicKeyCredential with an attestation response") from exc


def _parse_authentication(credential: Credential) -> AuthenticationCredential:
    try:
        return parse_authentication_credential_json(_as_json(credential))
    except _PARSE_ERRORS as exc:
        raise MalformedCredential("not a PublicKeyCredential with an assertion response") from exc


def verify_registration(
    credential: Credential, *, challenge: bytes, rp: RelyingParty, require_user_verification: bool = True
) -> NewCredential:
    """Section 7.1: check a navigator.credentials.create() response to ``challenge``; the new credential."""
    parsed = _parse_registration(credential)
    _check_client_data(parsed.response.client_data_json, CREATE, challenge, rp)
    try:
        attestation = parse_attestation_object(parsed.response.attestation_object)
    except _PARSE_ERRORS as exc:
        raise MalformedCredential("attestationObject is not valid CBOR authenticator data") from exc
    _check_authenticator_data(attestation.auth_data, rp, require_user_verification)
    try:
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            require_user_verification=require_user_verification,
            supported_pub_key_algs=list(ALGORITHMS),
        )
    except _PARSE_ERRORS as exc:
        raise InvalidCredential("the attestation does not verify") from exc
    return NewCredential(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        aaguid=verified.aaguid,
        user_verified=verified.user_verified,
    )


def verify_authentication(
    credential: Credential,
    *,
    challenge: bytes,
    rp: RelyingParty,
    public_key: bytes,
    stored_sign_count: int,
    handle: bytes | None = None,
) -> Assertion:
    """Section 7.2: check a navigator.credentials.get() response to ``challenge`` against the stored key.

    The signature is checked before the user handle and the counter, so a refusal for those two speaks
    about a genuine authenticator (a counter that went back suggests a cloned one).
    """
    parsed = _parse_authentication(credential)
    _check_client_data(parsed.response.client_data_json, GET, challenge, rp)
    try:
        auth_data = parse_authenticator_data(parsed.response.authenticator_data)
    except _PARSE_ERRORS as exc:
        raise MalformedCredential("authenticatorData is not valid") from exc
    _check_authenticator_data(auth_data, rp, require_uv=True)
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=list(rp.origins),
            credential_public_key=public_key,
            # The counter is judged below, after the signature, with its own error.
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except _PARSE_ERRORS as exc:
        raise InvalidCredential("the assertion signature does not verify") from exc
    received_handle = parsed.response.user_handle
    if handle is not None and received_handle and not hmac.compare_digest(received_handle, handle):
        raise UnknownCredential("the credential belongs to another user")
    if counter_regressed(stored_sign_count, verified.new_sign_count):
        raise CounterRegression(
            f"signature counter {verified.new_sign_count} is not above {stored_sign_count}: "
            "the authenticator may have been cloned"
        )
    return Assertion(verified.credential_id, verified.new_sign_count, verified.user_verified)
