"""A software WebAuthn authenticator for tests: a P-256 key, attestation "none", assertions, all by hand.

It builds authenticatorData, clientDataJSON, the CBOR attestation object and the ECDSA signature itself
(WebAuthn L2 sections 6.1, 6.5.4, 8.7; RFC 8152 COSE_Key; RFC 8949 CBOR), without the `webauthn` package
under test, so the server's checks face independently made bytes. Knobs let a test break one thing at a time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | info]) + value.to_bytes(size, "big")
    raise ValueError("too large for CBOR")


def cbor(value: Any) -> bytes:
    """RFC 8949 encoding of ints, byte strings, text and maps (all this authenticator needs)."""
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


@dataclass
class SoftwareAuthenticator:
    """One credential on one software authenticator (a test double for a passkey, real cryptography)."""

    counter: int = 0
    counter_step: int = 1
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    aaguid: bytes = bytes(16)
    user_handle: bytes | None = None

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        # COSE_Key: kty EC2 (1: 2), alg ES256 (3: -7), crv P-256 (-1: 1), x (-2), y (-3).
        return cbor(
            {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )

    def _client_data(self, ceremony: str, challenge: bytes, origin: str, cross_origin: bool) -> bytes:
        body = {
            "type": ceremony,
            "challenge": b64url(challenge),
            "origin": origin,
            "crossOrigin": cross_origin,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def create(
        self,
        options: dict[str, Any],
        origin: str,
        *,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        ceremony: str = "webauthn.create",
        flags: int = UP | UV | AT,
        cross_origin: bool = False,
    ) -> dict[str, Any]:
        """navigator.credentials.create() answered: a RegistrationResponseJSON with attestation "none"."""
        self.user_handle = unb64url(options["user"]["id"])
        client_data = self._client_data(
            ceremony, challenge or unb64url(options["challenge"]), origin, cross_origin
        )
        auth_data = (
            hashlib.sha256((rp_id or options["rp"]["id"]).encode()).digest()
            + bytes([flags])
            + self.counter.to_bytes(4, "big")
            + self.aaguid
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self.cose_key()
        )
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        origin: str,
        *,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        flags: int = UP | UV,
        counter: int | None = None,
        user_handle: bytes | None = None,
        cross_origin: bool = False,
        tamper: bool = False,
    ) -> dict[str, Any]:
        """navigator.credentials.get() answered: an AuthenticationResponseJSON signed with the key."""
        if counter is None:
            self.counter += self.counter_step
            counter = self.counter
        client_data = self._client_data(
            "webauthn.get", challenge or unb64url(options["challenge"]), origin, cross_origin
        )
        auth_data = (
            hashlib.sha256((rp_id or options["rpId"]).encode()).digest()
            + bytes([flags])
            + counter.to_bytes(4, "big")
        )
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        if tamper:
            auth_data = auth_data[:-1] + bytes([auth_data[-1] ^ 1])
        handle = user_handle if user_handle is not None else self.user_handle
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if handle is not None:
            response["userHandle"] = b64url(handle)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
        }
