"""RFC 9449 DPoP: checking proof JWTs (section 4.3) and binding access tokens to the key (section 6).

``verify_proof`` is pure apart from the ``JtiStore`` it is handed: the clock comes in as ``now``, the
expected method, URL, access token and server nonce as arguments. A failure raises ``InvalidDpopProof``
or ``UseDpopNonce``; when ``access_token`` is given the caller is a resource server and the errors carry
the RFC 9449 section 7.1 / section 9 ``WWW-Authenticate: DPoP`` challenge and status 401, otherwise
(token endpoint, section 5 / section 8) they are 400 JSON errors.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from app import strict_json
from app.clock import Clock
from app.errors import OAuthError, TemporarilyUnavailable, quoted

TYP = "dpop+jwt"
DEFAULT_ALGS: tuple[str, ...] = ("ES256", "EdDSA", "PS256")
MAX_PROOF_CHARS = 8192
MAX_JTI_CHARS = 256
MIN_RSA_BITS = 2048

# Asymmetric JWS algorithms we can check, with the key type (and curve) each requires. Anything else,
# "none" and the HS* family above all, is refused whatever ``allowed_algs`` says (RFC 9449 section 4.3).
_KEY_TYPES: dict[str, tuple[str, frozenset[str] | None]] = {
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
}
# RFC 7638 section 3.2 (RSA, EC) and RFC 8037 section 2 (OKP): the members a thumbprint hashes.
_THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
    "oct": ("k", "kty"),
}
# RFC 7518 section 6 and RFC 8037: members that only a private (or symmetric) key has.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_PERCENT_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidDpopProof(OAuthError):
    """RFC 9449 section 5 (token endpoint, 400) and section 7.1 (resource server, 401 with a challenge)."""

    error = "invalid_dpop_proof"
    status = 400

    def __init__(
        self,
        description: str,
        *,
        resource_server: bool = False,
        algs: Collection[str] = (),
        debug: str | None = None,
    ) -> None:
        super().__init__(description, debug=debug)
        self.resource_server = resource_server
        self.algs = tuple(algs)
        if resource_server:
            self.status = 401

    def headers(self) -> dict[str, str]:
        if not self.resource_server:
            return {}
        return {"WWW-Authenticate": _dpop_challenge(self.error, self.description, self.algs)}


class UseDpopNonce(OAuthError):
    """RFC 9449 section 8 (authorization server, 400) and section 9 (resource server, 401): retry with
    the nonce sent in the ``DPoP-Nonce`` header."""

    error = "use_dpop_nonce"
    status = 400

    def __init__(
        self,
        description: str,
        *,
        nonce: str,
        resource_server: bool = False,
        algs: Collection[str] = (),
        debug: str | None = None,
    ) -> None:
        super().__init__(description, debug=debug)
        self.nonce = nonce
        self.resource_server = resource_server
        self.algs = tuple(algs)
        if resource_server:
            self.status = 401

    def headers(self) -> dict[str, str]:
        headers = {"DPoP-Nonce": self.nonce}
        if self.resource_server:
            headers["WWW-Authenticate"] = _dpop_challenge(self.error, self.description, self.algs)
        return headers


def _dpop_challenge(error: str, description: str, algs: Sequence[str]) -> str:
    parts = [f'DPoP error="{error}"', f'error_description="{quoted(description)}"']
    if algs:
        # RFC 9449 section 7.1: the algs parameter lists the accepted proof algorithms.
        parts.append(f'algs="{quoted(" ".join(algs))}"')
    return ", ".join(parts)


@dataclass(frozen=True)
class DpopProof:
    """A checked proof: ``jkt`` is the RFC 7638 thumbprint of its public key, to bind or match a token."""

    jkt: str
    jwk: Mapping[str, Any]
    alg: str
    jti: str
    htm: str
    htu: str
    iat: datetime
    claims: Mapping[str, Any]


class JtiStore(Protocol):
    async def seen(self, jkt: str, jti: str, expires_at: datetime) -> bool:
        """True if ``jti`` was already used with the key ``jkt``; otherwise record it, atomically, until
        ``expires_at`` (after which ``verify_proof`` refuses the proof on ``iat`` anyway)."""
        ...


class MemoryJtiStore:
    """The in-process ``JtiStore``: one process only, bounded, entries dropped once expired.

    When ``max_entries`` unexpired entries are held it fails closed with ``TemporarilyUnavailable``
    rather than forget a ``jti`` early, which would let that proof be replayed.
    """

    def __init__(self, clock: Clock, *, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._max_entries = max_entries
        self._expiry: dict[tuple[str, str], datetime] = {}
        self._heap: list[tuple[datetime, tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    async def seen(self, jkt: str, jti: str, expires_at: datetime) -> bool:
        # No await between the check and the record: atomic on the event loop.
        now = self._clock.now()
        self._purge(now)
        key = (jkt, jti)
        if key in self._expiry:
            return True
        if len(self._expiry) >= self._max_entries:
            raise TemporarilyUnavailable("DPoP replay cache is full", debug=f"{self._max_entries} entries")
        self._expiry[key] = expires_at
        heapq.heappush(self._heap, (expires_at, key))
        return False

    def _purge(self, now: datetime) -> None:
        while self._heap and self._heap[0][0] <= now:
            expires_at, key = heapq.heappop(self._heap)
            if self._expiry.get(key) == expires_at:
                del self._expiry[key]


def b64url_sha256(text: str) -> str:
    """BASE64URL(SHA-256(text)) without padding: the ``ath`` claim (RFC 9449 section 4.2)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url). Raises ``ValueError`` for an unusable JWK."""
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError(f"unsupported JWK kty {kty!r}")
    required: dict[str, str] = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"JWK member {name!r} is missing or not a string")
        required[name] = value
    # RFC 7638 section 3.3: lexicographic member order, no whitespace, UTF-8.
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def access_token_binding(jkt: str) -> dict[str, dict[str, str]]:
    """RFC 9449 section 6.1: the confirmation claim binding an access token to the proof key."""
    return {"cnf": {"jkt": jkt}}


def single_proof(values: Sequence[str]) -> str | None:
    """The one ``DPoP`` header value of a request, or None; more than one is refused (section 4.3 item 1)."""
    if len(values) > 1:
        raise InvalidDpopProof("more than one DPoP header was sent")
    return values[0] if values else None


def normalize_htu(url: str) -> str | None:
    """The URI compared as ``htu``: without query and fragment, with RFC 3986 section 6.2.2 syntax-based and
    section 6.2.3 scheme-based normalisation (case of scheme, host and percent-encodings; default port;
    empty path as "/"). None if it is not an absolute http(s) URI."""
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
    path = _PERCENT_ENCODED.sub(_normalize_percent, parts.path) or "/"
    return f"{scheme}://{authority}{path}"


def _normalize_percent(match: re.Match[str]) -> str:
    char = chr(int(match.group(0)[1:], 16))
    return char if char in _UNRESERVED else match.group(0).upper()


async def verify_proof(
    proof: str | None,
    *,
    method: str,
    url: str,
    now: datetime,
    jti_store: JtiStore,
    access_token: str | None = None,
    nonce: str | None = None,
    accepted_nonces: Collection[str] = (),
    allowed_algs: Collection[str] = DEFAULT_ALGS,
    iat_window: timedelta = timedelta(seconds=60),
) -> DpopProof:
    """Check a DPoP proof as RFC 9449 section 4.3 lists, then record its ``jti``.

    ``proof`` is the single ``DPoP`` header value (see ``single_proof``), ``method`` and ``url`` the
    request's. ``access_token`` (resource servers) requires a matching ``ath``; the caller still compares
    the returned ``jkt`` with the token's ``cnf.jkt``. ``nonce`` (when the server issues nonces) must be
    echoed in the ``nonce`` claim (or one of ``accepted_nonces``, e.g. the previous one), else
    ``UseDpopNonce``. The ``jti`` is recorded only once every other
    check has passed, so a refused proof does not use it up.
    """
    algs = tuple(a for a in allowed_algs if a in _KEY_TYPES)
    rs = access_token is not None

    def invalid(description: str, debug: str | None = None) -> InvalidDpopProof:
        return InvalidDpopProof(description, resource_server=rs, algs=algs, debug=debug)

    if not proof:
        raise invalid("a DPoP proof is required")
    if len(proof) > MAX_PROOF_CHARS or _COMPACT_JWS.fullmatch(proof) is None:
        raise invalid("the DPoP proof is not a single compact JWS")

    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError as exc:
        raise invalid("the DPoP proof header is malformed", debug=str(exc)) from exc
    if not isinstance(header.get("typ"), str) or header["typ"].lower() != TYP:
        raise invalid(f"the DPoP proof typ must be {TYP}")
    if "crit" in header:
        raise invalid("the DPoP proof has critical header parameters we do not understand")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algs:
        raise invalid("the DPoP proof alg is not an accepted asymmetric algorithm", debug=f"alg={alg!r}")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise invalid("the DPoP proof has no jwk header")
    if _PRIVATE_MEMBERS & jwk.keys():
        raise invalid("the DPoP proof jwk must be a public key; it holds private key members")
    kty, curves = _KEY_TYPES[alg]
    if jwk.get("kty") != kty or (curves is not None and jwk.get("crv") not in curves):
        raise invalid(f"the DPoP proof jwk does not fit alg {alg}")
    try:
        jkt = thumbprint(jwk)
        key = jwt.PyJWK(jwk, algorithm=alg).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise invalid("the DPoP proof jwk is not a usable public key", debug=str(exc)) from exc
    if isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise invalid(f"the DPoP proof RSA key must have at least {MIN_RSA_BITS} bits")

    try:
        signed = jwt.PyJWS().decode_complete(proof, key=key, algorithms=[alg])
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise invalid("the DPoP proof signature is invalid", debug=str(exc)) from exc
    try:
        claims = strict_json.loads(signed["payload"])  # its jti is stored: no lone surrogate, no repeats
    except strict_json.JsonRejected as exc:
        raise invalid(f"the DPoP proof payload is refused: {exc.reason}") from None
    if not isinstance(claims, dict):
        raise invalid("the DPoP proof payload is not a JSON object")

    jti, htm, htu, iat = claims.get("jti"), claims.get("htm"), claims.get("htu"), claims.get("iat")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
        raise invalid("the DPoP proof jti is missing or malformed")
    if not isinstance(htm, str) or not isinstance(htu, str):
        raise invalid("the DPoP proof htm and htu claims are required")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise invalid("the DPoP proof iat claim is missing or not a number")
    if htm != method:
        raise invalid("the DPoP proof htm does not match the request method", debug=f"{htm!r} != {method!r}")
    expected_htu = normalize_htu(url)
    if expected_htu is None or normalize_htu(htu) != expected_htu:
        raise invalid("the DPoP proof htu does not match the request URI", debug=f"{htu!r} vs {url!r}")

    if nonce is not None:
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not any(
            hmac.compare_digest(sent.encode(), n.encode()) for n in (nonce, *accepted_nonces)
        ):
            description = "a DPoP nonce is required" if sent is None else "the DPoP nonce is stale or wrong"
            raise UseDpopNonce(description, nonce=nonce, resource_server=rs, algs=algs)

    try:
        issued_at = datetime.fromtimestamp(iat, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise invalid("the DPoP proof iat is out of range") from exc
    if issued_at < now - iat_window:
        raise invalid("the DPoP proof is too old (iat)", debug=f"iat={iat}")
    if issued_at > now + iat_window:
        raise invalid("the DPoP proof iat is in the future", debug=f"iat={iat}")

    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(
            ath.encode(), b64url_sha256(access_token).encode()
        ):
            raise invalid("the DPoP proof ath does not match the access token")

    # Accepted until issued_at + iat_window at the latest, so the jti need not be kept longer.
    if await jti_store.seen(jkt, jti, issued_at + iat_window):
        raise invalid("the DPoP proof was already used (jti replay)")

    return DpopProof(jkt=jkt, jwk=dict(jwk), alg=alg, jti=jti, htm=htm, htu=htu, iat=issued_at, claims=claims)
