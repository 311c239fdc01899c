"""RFC 9449 sections 4.3 and 7: checking a DPoP proof at a resource server, with optional server nonces.

Pure except for the ``jti`` store (``portcullis_resource.replay``), which the caller consults last, so a
refused proof never uses up its ``jti``. ``now`` is Unix seconds.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from portcullis_resource import jws
from portcullis_resource.errors import InvalidDpopProof, InvalidRequest, UseDpopNonce

TYP = "dpop+jwt"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
NONCE_WINDOW = 120


@dataclass(frozen=True, slots=True)
class Proof:
    jkt: str
    jti: str
    iat: float


def single(values: Sequence[str]) -> str | None:
    """The one ``DPoP`` header of a request (section 4.3 item 1: more than one is refused)."""
    if len(values) > 1:
        raise InvalidDpopProof("more than one DPoP header was sent")
    return values[0] if values else None


@functools.lru_cache(maxsize=4096)  # pure; a resource server sees few distinct URLs
def normalize_htu(url: str) -> str | None:
    """Section 4.3 item 9: the URI without query and fragment, after RFC 3986 section 6.2.2 and 6.2.3
    normalisation (case of scheme and host, percent-encodings, default port, empty path as "/")."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    authority = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _PERCENT.sub(_percent, parts.path) or "/"
    return f"{scheme}://{authority}{path}"


def _percent(match: re.Match[str]) -> str:
    char = chr(int(match.group(0)[1:], 16))
    return char if char in _UNRESERVED else match.group(0).upper()


class ProofKeys:
    """DPoP proof headers already seen: a client signs many proofs with one key, and so sends the same
    header segment each time. Its JSON is decoded, its key decoded (the point validated), thumbprinted and
    bound to its alg once. Bounded; cleared when full. The cached header dicts are never mutated."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._headers: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, tuple[str, jws.Verifier]] = {}
        self._max = max_entries

    def header(self, segment: str) -> dict[str, Any]:
        """The decoded header segment; raises JwsError."""
        held = self._headers.get(segment)
        if held is None:
            held = jws.decode_object(segment)
            if len(self._headers) >= self._max:
                self._headers.clear()
            self._headers[segment] = held
        return held

    def verifier(self, segment: str, alg: str, jwk: dict[str, Any]) -> tuple[str, jws.Verifier]:
        """(the RFC 7638 thumbprint of the header's ``jwk``, its signature check for ``alg``): ``segment``
        is the header these were read from, so it names both. Raises JwsError for a private or malformed
        JWK, or one that does not fit ``alg``."""
        held = self._keys.get(segment)
        if held is None:
            if "d" in jwk or "p" in jwk:
                raise jws.JwsError("a private key was given where a public key belongs")
            _, key = jws.key_from_jwk({k: v for k, v in jwk.items() if k != "alg"})
            held = (jws.thumbprint(jwk), jws.verifier(alg, key))
            if len(self._keys) >= self._max:
                self._keys.clear()
            self._keys[segment] = held
        return held


@functools.lru_cache(maxsize=1024)  # pure; a client sends one token with many proofs
def token_hash(access_token: str) -> str:
    """``ath``: base64url SHA-256 of the ASCII access token (section 4.2)."""
    return jws.b64encode(hashlib.sha256(access_token.encode("ascii")).digest())


def check_proof(
    proof: str | None,
    *,
    method: str,
    url: str,
    access_token: str,
    jkt: str,
    now: float,
    algorithms: Collection[str],
    max_age: float = 60.0,
    skew: float = 30.0,
    nonces: Nonces | None = None,
    keys: ProofKeys | None = None,
) -> Proof:
    """Every check of section 4.3 except the ``jti`` replay check (the caller's, against its store)."""
    if not proof:
        raise InvalidDpopProof("a DPoP proof is required for this DPoP-bound token")
    keys = keys or ProofKeys()
    try:
        head, body, sig = jws.split(proof)
        header = keys.header(head)
        claims = jws.decode_object(body)
        signature = jws.b64decode(sig)
    except jws.JwsError as exc:
        raise InvalidDpopProof(f"the DPoP proof is not a valid JWS: {exc}") from None
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() != TYP:
        raise InvalidDpopProof("the DPoP proof typ must be dpop+jwt")
    if "crit" in header:
        raise InvalidDpopProof("the DPoP proof names critical header parameters not understood here")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in jws.ALGORITHMS or alg not in algorithms:
        raise InvalidDpopProof("the DPoP proof alg must be one of " + " ".join(algorithms))
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise InvalidDpopProof("the DPoP proof has no jwk header")
    try:
        thumb, check = keys.verifier(head, alg, jwk)
        check(proof[: len(head) + 1 + len(body)].encode("ascii"), signature)
    except jws.JwsError as exc:
        raise InvalidDpopProof(f"the DPoP proof key or signature is not valid: {exc}") from None
    jti, htm, htu, iat = claims.get("jti"), claims.get("htm"), claims.get("htu"), claims.get("iat")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 256:
        raise InvalidDpopProof("the DPoP proof needs a jti")
    if htm != method:
        raise InvalidDpopProof("the DPoP proof htm does not match the request method")
    expected = normalize_htu(url)
    if not isinstance(htu, str) or expected is None or normalize_htu(htu) != expected:
        raise InvalidDpopProof("the DPoP proof htu does not match the request URI")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise InvalidDpopProof("the DPoP proof needs a numeric iat")
    if not now - max_age - skew <= iat <= now + skew:
        raise InvalidDpopProof("the DPoP proof is too old or from the future (iat)")
    if nonces is not None:
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not nonces.accepts(nonce, now):
            raise UseDpopNonce("the DPoP proof must carry the server's current nonce", nonces.current(now))
    if claims.get("ath") != token_hash(access_token):
        raise InvalidDpopProof("the DPoP proof ath does not match the access token")
    if not hmac.compare_digest(thumb, jkt):
        raise InvalidDpopProof("the DPoP proof key is not the one the token is bound to (cnf.jkt)")
    return Proof(thumb, jti, float(iat))


@dataclass(frozen=True, slots=True)
class Nonces:
    """Section 9 server nonces, stateless: an HMAC of the time window; the previous window's also holds,
    so every replica sharing ``key`` agrees without shared state. With nonces the freshness of a proof is
    the nonce's, not its ``iat`` (section 11.1)."""

    key: bytes
    window: int = NONCE_WINDOW

    def _nonce(self, slot: int) -> str:
        mac = hmac.new(self.key, f"dpop-nonce:{slot}".encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def current(self, now: float) -> str:
        return self._nonce(int(now) // self.window)

    def accepts(self, nonce: str, now: float) -> bool:
        slot = int(now) // self.window
        return any(hmac.compare_digest(nonce, self._nonce(s)) for s in (slot, slot - 1))


def authorization(header: str | None) -> tuple[str, str] | None:
    """(scheme, token) of an ``Authorization`` header (RFC 6750 section 2.1, RFC 9449 section 7.1)."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "dpop"):
        return None
    if not token or " " in token or len(token) > jws.MAX_JWS:
        raise InvalidRequest("the Authorization header is malformed", dpop=scheme.lower() == "dpop")
    return ("DPoP" if scheme.lower() == "dpop" else "Bearer"), token
