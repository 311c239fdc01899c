"""Token-signing keys (RFC 7517 JWK, RFC 7638 thumbprint kids): generation, encryption at rest, rotation.

ES256 (P-256) is the default; EdDSA (Ed25519, RFC 8037) is supported. Private keys are stored AES-256-GCM
encrypted under a key derived (HKDF-SHA256) from the server secret. A retired key's public half stays in
the JWKS until ``publish_until``: the moment every token it signed has expired.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from app.storage.records import AuditRecord, KeyRecord, KeyStore

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

# RFC 7638 section 3.2: the required members of each key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


# How often a running server re-reads the key table, and so how long it may keep signing with a key that
# another process (``portcullis keys rotate``) just retired: retired keys stay published this much longer.
RELOAD_INTERVAL = timedelta(seconds=30)
RELOAD_GRACE = timedelta(minutes=2)


def publish_window(*token_ttls: timedelta) -> timedelta:
    return max(token_ttls) + RELOAD_GRACE


class KeyDecryptionError(RuntimeError):
    """A stored key cannot be decrypted: the server secret differs from the one that encrypted it."""


@dataclass(frozen=True, slots=True)
class ActiveKey:
    kid: str
    alg: str
    private_key: PrivateKey


@dataclass(frozen=True, slots=True)
class KeyRing:
    active: ActiveKey
    published: tuple[dict[str, Any], ...]  # public JWKs, newest first

    def jwks(self) -> dict[str, Any]:
        return {"keys": list(self.published)}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: dict[str, Any], members: tuple[str, ...] | None = None) -> str:
    """RFC 7638 JWK thumbprint: SHA-256 over the required members, sorted, no whitespace."""
    required = {k: jwk[k] for k in (members or _THUMBPRINT_MEMBERS[jwk["kty"]])}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def _public_jwk(private_key: PrivateKey, alg: str) -> dict[str, Any]:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    jwk = {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y")}
    jwk.update(kid=thumbprint(jwk), alg=alg, use="sig")
    return jwk


def _aead(secret: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"portcullis signing-key encryption v1")
    return AESGCM(hkdf.derive(secret))


def encrypt_private_key(private_key: PrivateKey, secret: bytes, kid: str) -> bytes:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    iv = os.urandom(12)
    return iv + _aead(secret).encrypt(iv, pem, kid.encode())


def decrypt_private_key(blob: bytes, secret: bytes, kid: str) -> PrivateKey:
    try:
        pem = _aead(secret).decrypt(blob[:12], blob[12:], kid.encode())
    except InvalidTag:
        raise KeyDecryptionError(
            f"signing key {kid} cannot be decrypted: PORTCULLIS_SECRET_KEY is not the one it was stored with"
        ) from None
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyDecryptionError(f"signing key {kid} has an unsupported type")
    return key


def generate_key(alg: str, secret: bytes, now: datetime) -> tuple[KeyRecord, PrivateKey]:
    private_key: PrivateKey
    if alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    jwk = _public_jwk(private_key, alg)
    record = KeyRecord(
        kid=jwk["kid"],
        alg=alg,
        public_jwk=json.dumps(jwk, sort_keys=True),
        private_key_encrypted=encrypt_private_key(private_key, secret, jwk["kid"]),
        created_at=now,
    )
    return record, private_key


def build_keyring(records: list[KeyRecord], secret: bytes, now: datetime) -> KeyRing | None:
    """The ring at ``now``: the newest unretired key signs; keys inside their window are published."""
    live = [r for r in records if r.retired_at is None]
    if not live:
        return None
    newest = max(live, key=lambda r: r.created_at)
    published = sorted(
        (
            r
            for r in records
            if r.retired_at is None or (r.publish_until is not None and r.publish_until > now)
        ),
        key=lambda r: (r.retired_at is None, r.created_at),  # the signing key first, then newest first
        reverse=True,
    )
    return KeyRing(
        active=ActiveKey(
            newest.kid, newest.alg, decrypt_private_key(newest.private_key_encrypted, secret, newest.kid)
        ),
        published=tuple(json.loads(r.public_jwk) for r in published),
    )


# Describes a key activation for the audit log, given the new key's kid (the caller knows who and why).
Describe = Callable[[str], AuditRecord]


async def rotate(
    store: KeyStore, secret: bytes, alg: str, now: datetime, max_token_ttl: timedelta, describe: Describe
) -> KeyRing:
    """Make a new key active; earlier keys stay published for ``max_token_ttl`` (their tokens' lifetime)."""
    record, _ = generate_key(alg, secret, now)
    await store.activate_key(record, now, publish_until=now + max_token_ttl, audit=describe(record.kid))
    ring = build_keyring(await store.list_keys(), secret, now)
    assert ring is not None
    return ring


async def load_or_create(
    store: KeyStore, secret: bytes, alg: str, now: datetime, max_token_ttl: timedelta, describe: Describe
) -> KeyRing:
    """The ring at start-up; a first start (or a new ``signing_alg``) generates and persists a key."""
    ring = build_keyring(await store.list_keys(), secret, now)
    if ring is not None and ring.active.alg == alg:
        return ring
    return await rotate(store, secret, alg, now, max_token_ttl, describe)
