"""Token-signing keys (RFC 7517 JWK, RFC 7638 thumbprint kids): generation, encryption at rest, rotation.

ES256 (P-256) is the default; EdDSA (Ed25519, RFC 8037) is supported. Private keys are stored AES-256-GCM
encrypted under a key derived (HKDF-SHA256) from the server secret.

A key's life (OpenID Connect Core 10.1.1: a signing key must be in the JWKS before it is used):
``next`` (published from the moment it is stored, not yet signing) -> ``signing`` (from ``activates_at``)
-> ``retired-published`` (a newer key took over; still in the JWKS) -> ``expired`` (after ``publish_until``,
when every token it signed has expired). ``activates_at`` lies one JWKS cache lifetime plus one key reload
after the key was stored, so every replica has published it and every relying party's cached JWKS holds
it before the first token it signs. Every replica picks the signing key from the stored activation times
and its own clock (:func:`signing_record`), never "the newest row".
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from app.storage.records import AuditRecord, KeyRecord, KeyStore

KeyState = Literal["next", "signing", "retired-published", "expired"]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

# RFC 7638 section 3.2: the required members of each key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


# Retired keys stay published this much longer than their last token lives: a replica that could not reload
# the key table (database down) keeps signing with the key it knows, and replicas' clocks differ a little.
RELOAD_GRACE = timedelta(minutes=2)
# Added to an activation lead: a reload takes a moment after its tick, and replicas' clocks differ a little.
ACTIVATION_SLACK = timedelta(seconds=2)


def publish_window(*token_ttls: timedelta) -> timedelta:
    return max(token_ttls) + RELOAD_GRACE


def activation_lead(jwks_max_age: timedelta, reload_interval: timedelta) -> timedelta:
    """How long after it is stored a new key starts signing.

    Every replica publishes it within one ``reload_interval``; a relying party that fetched the JWKS from a
    replica just before then keeps that copy for ``jwks_max_age`` (the ``Cache-Control: max-age`` of
    ``/jwks``). After both, every cached JWKS holds the key.
    """
    return jwks_max_age + reload_interval + ACTIVATION_SLACK


class KeyDecryptionError(RuntimeError):
    """A stored key cannot be decrypted: the server secret differs from the one that encrypted it."""


@dataclass(frozen=True, slots=True)
class ActiveKey:
    kid: str
    alg: str
    private_key: PrivateKey


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The keys at one instant: the one that signs, and the public JWKs served (signing key first)."""

    active: ActiveKey
    published: tuple[dict[str, Any], ...]

    def jwks(self) -> dict[str, Any]:
        return {"keys": list(self.published)}


def _activation(record: KeyRecord) -> datetime:
    return record.activates_at or record.created_at  # rows from before activation times: at creation


def signing_record(records: list[KeyRecord], now: datetime) -> KeyRecord | None:
    """The key that signs at ``now``: the latest whose activation time has come.

    Only when no key has started yet (a replica whose clock is behind the one that created the very first
    key) the earliest is used: there is nothing older to sign with.
    """
    if not records:
        return None
    started = [r for r in records if _activation(r) <= now]
    if started:
        return max(started, key=_activation)
    return min(records, key=_activation)


def is_published(record: KeyRecord, now: datetime) -> bool:
    return record.publish_until is None or record.publish_until > now


def key_state(record: KeyRecord, records: list[KeyRecord], now: datetime) -> KeyState:
    """What ``portcullis keys list`` shows for ``record``; the same rule the servers sign by."""
    signing = signing_record(records, now)
    if signing is not None and signing.kid == record.kid:
        return "signing"
    if _activation(record) > now:
        return "next"
    return "retired-published" if is_published(record, now) else "expired"


@dataclass(frozen=True, slots=True)
class KeySchedule:
    """Every stored key that is still published, decrypted once at load; :meth:`at` gives the ring at an
    instant. A replica keeps this between reloads, so it switches to a new key at its activation time
    even between two reads of the key table."""

    records: tuple[KeyRecord, ...]
    private_keys: dict[str, PrivateKey]
    jwks: dict[str, dict[str, Any]]

    def at(self, now: datetime) -> KeyRing:
        records = list(self.records)
        signing = signing_record(records, now)
        assert signing is not None  # a schedule is never empty (load_schedule)
        others = sorted(
            (r for r in records if r.kid != signing.kid and is_published(r, now)),
            key=_activation,
            reverse=True,
        )
        return KeyRing(
            active=ActiveKey(signing.kid, signing.alg, self.private_keys[signing.kid]),
            published=tuple(self.jwks[r.kid] for r in (signing, *others)),
        )

    @property
    def latest(self) -> KeyRecord:
        """The key stored last (the next one while a rotation is pending)."""
        return max(self.records, key=_activation)


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


def load_schedule(records: list[KeyRecord], secret: bytes, now: datetime) -> KeySchedule | None:
    """The stored keys still published at ``now`` (or that may still sign), private halves decrypted."""
    signing = signing_record(records, now)
    kept = tuple(r for r in records if is_published(r, now) or r is signing)
    if not kept:
        return None
    return KeySchedule(
        records=kept,
        private_keys={r.kid: decrypt_private_key(r.private_key_encrypted, secret, r.kid) for r in kept},
        jwks={r.kid: json.loads(r.public_jwk) for r in kept},
    )


def build_keyring(records: list[KeyRecord], secret: bytes, now: datetime) -> KeyRing | None:
    """The ring at ``now``: the key activated last signs; the keys inside their window are published."""
    schedule = load_schedule(records, secret, now)
    return schedule.at(now) if schedule is not None else None


# Describes a key activation for the audit log, given the new key's kid (the caller knows who and why).
Describe = Callable[[str], AuditRecord]


@dataclass(frozen=True, slots=True)
class Timing:
    """When a rotation's new key starts signing, and how long the keys it retires stay published."""

    lead: timedelta  # activation_lead(): published this long before it signs
    publish_window: timedelta  # publish_window(): the longest token lifetime plus grace


async def rotate(
    store: KeyStore, secret: bytes, alg: str, now: datetime, timing: Timing, describe: Describe
) -> KeyRecord:
    """Store a new key, published at once, signing from ``now + timing.lead``; the key signing until then
    retires at that moment and stays published ``timing.publish_window`` longer. Returns the new key."""
    record, _ = generate_key(alg, secret, now)
    activates_at = now + timing.lead
    record = replace(record, activates_at=activates_at)
    await store.activate_key(
        record, activates_at, publish_until=activates_at + timing.publish_window, audit=describe(record.kid)
    )
    return record


async def load_or_create(
    store: KeyStore, secret: bytes, alg: str, now: datetime, timing: Timing, describe: Describe
) -> KeySchedule:
    """The keys at start-up. A first start creates a key that signs at once (nobody can hold an older
    JWKS); a new ``signing_alg`` rotates to a key of that algorithm, with the usual lead."""
    schedule = load_schedule(await store.list_keys(), secret, now)
    if schedule is not None and schedule.latest.alg == alg:
        return schedule
    first = schedule is None
    await rotate(
        store, secret, alg, now, Timing(timedelta(0), timing.publish_window) if first else timing, describe
    )
    schedule = load_schedule(await store.list_keys(), secret, now)
    assert schedule is not None
    return schedule
