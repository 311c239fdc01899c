"""RFC 7591 section 2 client metadata, loaded from a static JSON file: the registered OAuth clients.

Dynamically registered clients (RFC 7591/7592, app.oauth.registration) use the same model and join the
static ones in the :class:`ClientRegistry`.

Redirect URIs are compared by exact string match (RFC 9700 section 4.1.3, FAPI 2.0 Security Profile
5.3.2.2): no normalisation of case, path, query or trailing slash. Client secrets are kept only as salted
scrypt hashes; a secret given in clear in the file is hashed when the file is loaded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from jwt import PyJWK
from jwt.exceptions import PyJWKError
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from app.oauth import origins

AuthMethod = Literal["private_key_jwt", "client_secret_basic", "client_secret_post", "none"]
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
ResponseType = Literal["code"]

# Client assertion algorithms (FAPI 2.0 Security Profile 5.4.1): no RS256, no HS*, never "none".
ASSERTION_ALGS = frozenset({"ES256", "EdDSA", "PS256"})
MIN_RSA_BITS = 2048  # FAPI 2.0 5.4.1
MIN_SECRET_LENGTH = 24

# RFC 6749 appendix A.1: client_id = *VSCHAR; bounded so ids stay loggable.
_CLIENT_ID = re.compile(r"[\x20-\x7e]{1,128}")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# A SIWE (EIP-4361) domain is an RFC 3986 authority without userinfo: host[:port].
_SIWE_DOMAIN = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?::\d{1,5})?"
)
_LOOPBACK_HOSTS = origins.LOOPBACK_HOSTS
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

# scrypt parameters (RFC 7914): N=2^14, r=8, p=1 uses 16 MiB per hash. Stored hashes may use other
# parameters within these bounds, so a hostile file cannot make verification arbitrarily expensive.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAX_N, _SCRYPT_MAX_R, _SCRYPT_MAX_P = 2**17, 16, 4
_HASH_PREFIX = "scrypt"


class ClientConfigError(ValueError):
    """The clients file is unreadable or a client in it is invalid; the message names client and field."""


def hash_client_secret(secret: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64url, unpadded) for ``secret`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = _scrypt(secret, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join([_HASH_PREFIX, str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)])


def unmatchable_hash() -> str:
    """A hash in the form of :func:`hash_client_secret`, with the default parameters, that no secret matches.

    Its digest is random rather than derived from a secret, so building it costs nothing while checking a
    secret against it costs exactly what checking against a real default hash costs: the stand-in for an
    unknown client, so that timing does not tell registered client ids from unknown ones.
    """
    parts = [_HASH_PREFIX, str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P)]
    return "$".join([*parts, _b64(secrets.token_bytes(16)), _b64(secrets.token_bytes(32))])


def verify_client_secret(secret: str, encoded: str) -> bool:
    """Constant-time comparison of ``secret`` against a hash made by :func:`hash_client_secret`."""
    n, r, p, salt, expected = _parse_hash(encoded)
    return hmac.compare_digest(_scrypt(secret, salt, n, r, p), expected)


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r * p, dklen=32)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _HASH_PREFIX:
        raise ValueError("must be scrypt$N$r$p$salt$hash (see docs/CLIENTS.md)")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error) as exc:
        raise ValueError("must be scrypt$N$r$p$salt$hash with base64url salt and hash") from exc
    n_ok = 2**14 <= n <= _SCRYPT_MAX_N and not n & (n - 1)
    if not n_ok or not 1 <= r <= _SCRYPT_MAX_R or not 1 <= p <= _SCRYPT_MAX_P:
        raise ValueError("scrypt parameters out of range (N a power of two in 2^14..2^17, r<=16, p<=4)")
    if len(salt) < 16 or len(digest) != 32:
        raise ValueError("scrypt salt must be at least 16 bytes and the hash 32 bytes")
    return n, r, p, salt, digest


def _check_redirect_uri(uri: str) -> str:
    """Absolute, no fragment (RFC 6749 3.1.2); https, or http on a loopback host (RFC 8252 7.3)."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"{uri[:200]!r} is not a valid URI") from exc
    if "#" in uri:
        raise ValueError(f"{uri[:200]!r} must not contain a fragment")
    if not parts.scheme or not host:
        raise ValueError(f"{uri[:200]!r} must be an absolute URI with a host")
    if parts.scheme == "http" and host in _LOOPBACK_HOSTS:
        return uri
    if parts.scheme != "https":
        raise ValueError(f"{uri[:200]!r} must use https (http only for 127.0.0.1, [::1] or localhost)")
    return uri


def _check_jwk(jwk: Any) -> None:
    if not isinstance(jwk, dict):
        raise ValueError("each key must be a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("each key needs a non-empty string kid (keys are chosen by kid)")
    if _PRIVATE_JWK_MEMBERS & jwk.keys():
        raise ValueError(f"key {kid!r} holds private or symmetric key material; register public keys only")
    if jwk.get("use", "sig") != "sig":
        raise ValueError(f"key {kid!r} has use {jwk.get('use')!r}; client assertion keys must be 'sig'")
    alg = jwk.get("alg")
    if alg is not None and alg not in ASSERTION_ALGS:
        raise ValueError(f"key {kid!r} has alg {alg!r}; allowed: {', '.join(sorted(ASSERTION_ALGS))}")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if not ((kty == "EC" and crv == "P-256") or (kty == "OKP" and crv == "Ed25519") or kty == "RSA"):
        raise ValueError(f"key {kid!r} must be EC P-256, OKP Ed25519 or RSA")
    try:
        parsed = PyJWK(jwk)
    except (PyJWKError, ValueError, TypeError) as exc:
        raise ValueError(f"key {kid!r} is not a valid public JWK") from exc
    if kty == "RSA" and parsed.key.key_size < MIN_RSA_BITS:
        raise ValueError(f"key {kid!r}: RSA keys must have at least {MIN_RSA_BITS} bits")


def check_jwk_set(value: Any) -> dict[str, Any]:
    """A client's JWK set, inline (``jwks``) or fetched from ``jwks_uri``: public signing keys, unique kids.

    Raises ValueError naming the first problem.
    """
    if not isinstance(value, dict):
        raise ValueError('must be a JWK set: {"keys": [...]} with at least one key')
    keys = value.get("keys")
    if set(value) != {"keys"} or not isinstance(keys, list) or not keys:
        raise ValueError('must be a JWK set: {"keys": [...]} with at least one key')
    for jwk in keys:
        _check_jwk(jwk)
    kids = [k["kid"] for k in keys]
    if len(set(kids)) != len(kids):
        raise ValueError("kid values must be unique")
    return value


def check_jwks_uri(uri: str) -> str:
    """An absolute https URI without fragment; http only on a loopback host (fetched in development only)."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"{uri[:200]!r} is not a valid URI") from exc
    scheme_ok = parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK_HOSTS)
    if not host or "#" in uri or parts.username is not None or not scheme_ok:
        raise ValueError(
            "must be an https URI with a host, without a fragment or user info"
            " (http only on 127.0.0.1, [::1] or localhost, and fetched in development mode only)"
        )
    return uri


class Client(BaseModel):
    """One registered client. Holds the secret's hash only, never the secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str
    client_name: str | None = None
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[GrantType, ...] = ("authorization_code",)
    response_types: tuple[ResponseType, ...] = ("code",)
    scope: tuple[str, ...] = ()
    token_endpoint_auth_method: AuthMethod
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    client_secret_hash: str | None = None
    access_token_lifetime: StrictInt | None = None
    refresh_token_lifetime: StrictInt | None = None
    siwe_domains: tuple[str, ...] = ()
    # Browser origins allowed to call the token, userinfo, revocation and SIWE endpoints for this client
    # (CORS, docs/CLIENTS.md); when absent, the origins of redirect_uris and siwe_domains.
    allowed_origins: tuple[str, ...] | None = None
    dpop_bound_access_tokens: StrictBool = False
    require_pushed_authorization_requests: StrictBool = False

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not _CLIENT_ID.fullmatch(value) or value != value.strip():
            raise ValueError("must be 1-128 printable ASCII characters without leading or trailing spaces")
        return value

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _uris(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for uri in value:
            _check_redirect_uri(uri)
        if len(set(value)) != len(value):
            raise ValueError("contains duplicates")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _allowed_origins(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        for origin in value:
            origins.check_allowed_origin(origin)
        if len(set(value)) != len(value):
            raise ValueError("contains duplicates")
        return value

    @field_validator("grant_types", "response_types", "siwe_domains")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("contains duplicates")
        return value

    @field_validator("scope", mode="before")
    @classmethod
    def _scope(cls, value: Any) -> Any:
        # RFC 7591 2: "scope" is a space-separated string; a JSON list is accepted too.
        tokens = value.split(" ") if isinstance(value, str) else value
        if isinstance(tokens, list | tuple):
            bad = [t for t in tokens if not isinstance(t, str) or not _SCOPE_TOKEN.fullmatch(t)]
            if bad:
                raise ValueError(f"invalid scope token {str(bad[0])[:64]!r} (RFC 6749 section 3.3)")
            return tuple(dict.fromkeys(tokens))
        return value

    @field_validator("jwks")
    @classmethod
    def _jwks(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_jwk_set(value)

    @field_validator("jwks_uri")
    @classmethod
    def _jwks_uri(cls, value: str | None) -> str | None:
        if value is not None:
            check_jwks_uri(value)
        return value

    @field_validator("client_secret_hash")
    @classmethod
    def _secret_hash(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_hash(value)
        return value

    @field_validator("access_token_lifetime", "refresh_token_lifetime")
    @classmethod
    def _lifetime(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 366 * 86400:
            raise ValueError("must be a number of seconds between 1 and 31622400")
        return value

    @field_validator("siwe_domains")
    @classmethod
    def _siwe_domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for domain in value:
            if not _SIWE_DOMAIN.fullmatch(domain):
                raise ValueError(f"{domain[:100]!r} is not a lower-case host[:port]")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Client:
        method = self.token_endpoint_auth_method
        if self.jwks is not None and self.jwks_uri is not None:
            raise ValueError("jwks: give jwks or jwks_uri, not both (RFC 7591 section 2)")
        if method == "private_key_jwt" and self.jwks is None and self.jwks_uri is None:
            raise ValueError("jwks: private_key_jwt needs jwks (inline) or jwks_uri")
        uses_secret = method in ("client_secret_basic", "client_secret_post")
        if uses_secret and self.client_secret_hash is None:
            raise ValueError(f"client_secret_hash: {method} needs client_secret_hash (or client_secret)")
        if not uses_secret and self.client_secret_hash is not None:
            raise ValueError(f"client_secret_hash: not allowed with token_endpoint_auth_method {method}")
        if method == "none" and "client_credentials" in self.grant_types:
            raise ValueError("grant_types: client_credentials needs an authenticated client, not method none")
        if "authorization_code" in self.grant_types and not self.redirect_uris:
            raise ValueError("redirect_uris: authorization_code needs at least one redirect URI")
        if not self.grant_types:
            raise ValueError("grant_types: must not be empty")
        return self

    def browser_origins(self) -> frozenset[str]:
        """The origins this client's browser pages call from (app.oauth.origins.client_origins)."""
        return origins.client_origins(self.redirect_uris, self.siwe_domains, self.allowed_origins)


def redirect_uri_allowed(client: Client, uri: str) -> bool:
    """Exact, case-sensitive string match against a registered URI (RFC 9700 4.1.3): no normalisation."""
    return any(hmac.compare_digest(uri.encode(), registered.encode()) for registered in client.redirect_uris)


class ClientRegistry:
    """The registered clients, by ``client_id``: static ones from the clients file, fixed at start-up, and
    dynamic ones (RFC 7591) that app.oauth.registrar adds, replaces, removes and reloads.

    A static client always wins: no dynamic client can take, change or remove a static ``client_id``.
    """

    def __init__(self, clients: Iterable[Client], dynamic: Iterable[Client] = ()) -> None:
        by_id: dict[str, Client] = {}
        for client in clients:
            if client.client_id in by_id:
                raise ClientConfigError(f"client {client.client_id!r}: client_id: duplicate client_id")
            by_id[client.client_id] = client
        self._static: Mapping[str, Client] = by_id
        self._dynamic: dict[str, Client] = {}
        self._origins: frozenset[str] | None = None  # every client's browser origins, rebuilt on change
        self.set_dynamic(dynamic)

    def get(self, client_id: str) -> Client | None:
        return self._static.get(client_id) or self._dynamic.get(client_id)

    def is_static(self, client_id: str) -> bool:
        return client_id in self._static

    def put_dynamic(self, client: Client) -> None:
        """Add or replace a dynamic client (after its registration or update was stored)."""
        if self.is_static(client.client_id):
            raise ClientConfigError(f"client {client.client_id!r}: client_id: taken by a static client")
        self._dynamic[client.client_id] = client
        self._origins = None

    def remove_dynamic(self, client_id: str) -> None:
        self._dynamic.pop(client_id, None)
        self._origins = None

    def set_dynamic(self, clients: Iterable[Client]) -> list[str]:
        """Swap in a whole new set of dynamic clients (a reload); returns the ids skipped as static."""
        fresh: dict[str, Client] = {}
        skipped: list[str] = []
        for client in clients:
            if self.is_static(client.client_id):
                skipped.append(client.client_id)
            else:
                fresh[client.client_id] = client
        self._dynamic = fresh
        self._origins = None
        return skipped

    def origin_registered(self, origin: str) -> bool:
        """Is ``origin`` a browser origin of at least one registered client? (CORS preflights, which
        name no client.)"""
        if self._origins is None:
            every = [*self._static.values(), *self._dynamic.values()]
            self._origins = frozenset().union(*(c.browser_origins() for c in every))
        return origin in self._origins

    def __len__(self) -> int:
        return len(self._static) + len(self._dynamic)

    def ids(self) -> list[str]:
        return [*self._static, *self._dynamic]


def load_clients(path: Path) -> ClientRegistry:
    """Read a JSON list of RFC 7591 client objects; ``client_secret`` given in clear is hashed here."""
    return ClientRegistry(read_clients(path))


def read_clients(path: Path) -> list[Client]:
    """The clients of a clients file, parsed (see :func:`load_clients`)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClientConfigError(f"clients file {path}: cannot read JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise ClientConfigError(f"clients file {path}: must be a JSON list of client objects")
    return [parse_client(item, index=i) for i, item in enumerate(raw)]


def parse_client(item: Any, *, index: int = 0) -> Client:
    """One client object from the file; errors name the client (id, or position) and the field."""
    if not isinstance(item, dict):
        raise ClientConfigError(f"client #{index}: must be a JSON object")
    cid = item.get("client_id")
    name = repr(cid[:128]) if isinstance(cid, str) else f"#{index}"
    data = dict(item)
    if "client_secret" in data:
        secret = data.pop("client_secret")
        if "client_secret_hash" in data:
            raise ClientConfigError(f"client {name}: client_secret: give client_secret or client_secret_hash")
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            raise ClientConfigError(
                f"client {name}: client_secret: must be at least {MIN_SECRET_LENGTH} characters"
            )
        data["client_secret_hash"] = hash_client_secret(secret)
    try:
        return Client.model_validate(data)
    except ValidationError as exc:
        raise ClientConfigError(f"client {name}: {describe_errors(exc)}") from None


def describe_errors(exc: ValidationError) -> str:
    """Each problem as ``field: message``, without echoing the input (it may hold a secret)."""
    problems = []
    for err in exc.errors(include_input=False):
        msg = str(err["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(part) for part in err["loc"])
        problems.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(problems)
