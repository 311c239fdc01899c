"""RFC 7515 compact JWS: parse and verify with ``cryptography`` directly (RFC 7518 section 3, RFC 8037).

Pure. Only asymmetric algorithms exist here (``none`` and HS* are not even spelled), and each is bound to
the key type that may verify it, so a key can never be used with an algorithm of another family.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

# alg -> (kty, crv or None). RFC 7518 section 3.1 and RFC 8037 section 3.1.
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
}
_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
# Immutable signature-scheme objects, built once rather than per verify.
_ECDSA = {bits: ec.ECDSA(h()) for bits, h in _HASHES.items()}
MAX_JWS = 16_384


class JwsError(ValueError):
    """The bytes are not a well-formed or correctly signed JWS; the text says which."""


def b64decode(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515 section 2): any other character, or a length no
    encoding has, is refused rather than skipped."""
    if not text.isascii() or "=" in text or "+" in text or "/" in text:
        raise JwsError("not base64url")
    try:
        return binascii.a2b_base64(
            text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), strict_mode=True
        )
    except (binascii.Error, ValueError):
        raise JwsError("not base64url") from None


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Jws:
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def split(token: str) -> tuple[str, str, str]:
    """The three segments of a compact JWS (header, payload, signature), still encoded."""
    if len(token) > MAX_JWS:
        raise JwsError("too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwsError("not a compact JWS")
    return parts[0], parts[1], parts[2]


def decode_object(segment: str) -> dict[str, Any]:
    """A base64url segment holding a JSON object."""
    try:
        value = orjson.loads(b64decode(segment))  # UTF-8 checked by orjson; NaN and lone surrogates refused
    except orjson.JSONDecodeError:
        raise JwsError("header or payload is not JSON") from None
    if not isinstance(value, dict):
        raise JwsError("header and payload must be JSON objects")
    return value


def parse(token: str) -> Jws:
    """Split and decode a compact JWS whose header and payload are JSON objects (no signature check)."""
    head, body, sig = split(token)
    return Jws(decode_object(head), decode_object(body), f"{head}.{body}".encode("ascii"), b64decode(sig))


def key_from_jwk(jwk: dict[str, Any]) -> tuple[str, PublicKey]:
    """(the algorithm the key is for, the key). Only public members are read; raises JwsError."""
    kty, alg = jwk.get("kty"), jwk.get("alg")
    if "d" in jwk or "p" in jwk:
        raise JwsError("a private key was given where a public key belongs")
    try:
        if kty == "EC":
            curve, size = _CURVES[jwk["crv"]]
            x, y = b64decode(jwk["x"]), b64decode(jwk["y"])
            if len(x) != size or len(y) != size:
                raise JwsError("EC coordinates of the wrong length")
            key: PublicKey = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
            ).public_key()
            default = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[jwk["crv"]]
        elif kty == "OKP" and jwk.get("crv") == "Ed25519":
            key = ed25519.Ed25519PublicKey.from_public_bytes(b64decode(jwk["x"]))
            default = "EdDSA"
        elif kty == "RSA":
            n, e = int.from_bytes(b64decode(jwk["n"]), "big"), int.from_bytes(b64decode(jwk["e"]), "big")
            if n.bit_length() < 2048:
                raise JwsError("RSA keys shorter than 2048 bits are refused")
            key = rsa.RSAPublicNumbers(e, n).public_key()
            default = "RS256"
        else:
            raise JwsError(f"unsupported key type {str(kty)[:20]}")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, JwsError):
            raise
        raise JwsError("malformed JWK") from None
    alg = alg if isinstance(alg, str) else default
    if ALGORITHMS.get(alg, ("", None))[0] != kty:
        raise JwsError(f"the key's alg {alg[:20]} does not fit its type {kty}")
    return alg, key


Verifier = Callable[[bytes, bytes], None]


def verifier(alg: str, key: PublicKey) -> Verifier:
    """A check of (signing input, raw JWS signature) under ``key`` for ``alg``, with the fit of alg to key
    decided here once (a key set's keys and a DPoP client's key sign many tokens). Raises JwsError."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        kty, crv = ALGORITHMS.get(alg, ("", None))
        curve, size = _CURVES[crv] if kty == "EC" and crv else (None, 0)
        if curve is None or key.curve.name != curve.name:
            raise JwsError(f"alg {alg[:20]} does not fit this key")
        scheme, ec_verify = _ECDSA[alg[2:]], key.verify

        def check_ec(data: bytes, sig: bytes) -> None:
            if len(sig) != 2 * size:
                raise JwsError("signature of the wrong length")
            der = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
            try:
                ec_verify(der, data, scheme)
            except InvalidSignature:
                raise JwsError("bad signature") from None

        return check_ec
    if isinstance(key, ed25519.Ed25519PublicKey):
        if alg != "EdDSA":
            raise JwsError(f"alg {alg[:20]} does not fit this key")
        ed_verify = key.verify

        def check_ed(data: bytes, sig: bytes) -> None:
            try:
                ed_verify(sig, data)
            except InvalidSignature:
                raise JwsError("bad signature") from None

        return check_ed
    if ALGORITHMS.get(alg, ("", None))[0] != "RSA":
        raise JwsError(f"alg {alg[:20]} does not fit this key")
    digest = _HASHES[alg[2:]]
    pss = padding.PSS(padding.MGF1(digest()), digest().digest_size)
    pad: padding.AsymmetricPadding = padding.PKCS1v15() if alg.startswith("RS") else pss
    rsa_verify = key.verify

    def check_rsa(data: bytes, sig: bytes) -> None:
        try:
            rsa_verify(sig, data, pad, digest())
        except InvalidSignature:
            raise JwsError("bad signature") from None

    return check_rsa


def verify(alg: str, key: PublicKey, jws: Jws) -> None:
    """Check ``jws``'s signature under ``key`` for ``alg``; the alg must belong to the key's type."""
    verifier(alg, key)(jws.signing_input, jws.signature)


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public JWK (its required members only, sorted, no whitespace)."""
    members = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
    names = members.get(str(jwk.get("kty")))
    if names is None or any(not isinstance(jwk.get(n), str) for n in names):
        raise JwsError("malformed JWK")
    canonical = json.dumps({n: jwk[n] for n in names}, separators=(",", ":"), sort_keys=True)
    return b64encode(hashlib.sha256(canonical.encode()).digest())
