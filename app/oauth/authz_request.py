"""RFC 6749 section 4.1.1 authorization request, as FAPI 2.0 narrows it: code only, PKCE S256 only.

Pure: ``check_client_and_redirect`` settles what may be trusted (the client and its exact redirect URI);
until it has, errors are shown on a page, never redirected (RFC 6749 section 4.1.2.1). ``check_request``
then checks everything else and raises errors that are redirected back with ``state`` and ``iss``.
Covers OIDC Core 3.1.2.1 (``nonce``, ``prompt``, ``max_age``, ``acr_values``), RFC 8707 ``resource``,
RFC 9396 ``authorization_details`` and RFC 9449 section 10 ``dpop_jkt``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.errors import (
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    LoginRequired,
    OAuthError,
    RequestNotSupported,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from app.oauth import pkce
from app.oauth.clients import Client, ClientRegistry, redirect_uri_allowed
from app.oauth.scope import parse_scope
from app.policy.rar import parse_authorization_details

MAX_STATE = 1024
MAX_OIDC_NONCE = 255
MAX_RESOURCE = 2048
_PROMPTS = frozenset({"none", "login", "consent", "select_account"})
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A checked authorization request: what the code, and the tokens it buys, will be bound to."""

    client_id: str
    redirect_uri: str  # always sent (OIDC Core 3.1.2.1), so the token request must repeat it (RFC 6749 4.1.3)
    scope: str
    code_challenge: str
    state: str | None = None
    nonce: str | None = None
    prompt: tuple[str, ...] = ()
    max_age: int | None = None
    acr_values: str | None = None
    resource: tuple[str, ...] = ()
    authorization_details: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    dpop_jkt: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AuthorizationRequest:
        raw = json.loads(text)
        for name in ("prompt", "resource", "authorization_details"):
            raw[name] = tuple(raw[name])
        return cls(**raw)


@dataclass(frozen=True, slots=True)
class Trusted:
    """The client and the redirect URI it registered: from here on, errors go back to the client."""

    client: Client
    redirect_uri: str
    state: str | None


class PageError(Exception):
    """An error shown to the user on our own page: the redirect URI cannot be trusted (yet)."""

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.description)
        self.error = error


def check_client_and_redirect(
    params: Mapping[str, str], registry: ClientRegistry, *, client_id: str | None = None
) -> Trusted:
    """The client (``client_id``, or the authenticated one at PAR) and its exactly registered redirect URI."""
    cid = client_id if client_id is not None else params.get("client_id")
    if not cid:
        raise PageError(InvalidRequest("client_id is required"))
    client = registry.get(cid)
    if client is None:
        # A page, not a token endpoint answer: 400 invalid_request as for a pushed request's unknown client
        # (an HTTP 401 would need a WWW-Authenticate challenge, RFC 9110 section 15.5.2).
        raise PageError(InvalidRequest("the client is not registered", debug=f"client_id {cid[:64]!r}"))
    uri = params.get("redirect_uri")
    if uri is None:
        # Every request here is an OpenID request (openid is always granted): OIDC Core 3.1.2.1 makes
        # redirect_uri REQUIRED and FAPI 2.0 SP 5.3.2.2 requires it in pushed requests, so RFC 6749
        # 3.1.2.3's shortcut for a client with a single registered URI does not apply.
        raise PageError(InvalidRequest("redirect_uri is required (OpenID Connect Core 3.1.2.1)"))
    if not redirect_uri_allowed(client, uri):
        raise PageError(InvalidRequest("redirect_uri does not match any URI the client registered"))
    return Trusted(client, uri, params.get("state"))


def check_request(
    params: Mapping[str, str], trusted: Trusted, *, known_scopes: frozenset[str]
) -> AuthorizationRequest:
    """Everything after the redirect URI, in RFC order. Errors raised here are redirected to the client."""
    client = trusted.client
    if "request" in params:  # ignoring a request object would change the request's meaning
        raise RequestNotSupported("request objects are not supported; push the request (PAR)")
    if "request_uri" in params:
        raise InvalidRequest("request_uri cannot be pushed or nested inside a request")
    response_type = params.get("response_type")
    if not response_type:
        raise InvalidRequest("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseType("only response_type=code is supported")
    if "code" not in client.response_types or "authorization_code" not in client.grant_types:
        raise UnauthorizedClient("this client may not use the authorization code flow")
    if params.get("response_mode", "query") != "query":
        raise InvalidRequest("only response_mode=query is supported")
    state = _bounded(params, "state", MAX_STATE)
    nonce = _bounded(params, "nonce", MAX_OIDC_NONCE)
    challenge = pkce.validate_challenge(params.get("code_challenge"), params.get("code_challenge_method"))
    scope = _scope(params.get("scope"), client, known_scopes)
    prompt = _prompt(params.get("prompt"))
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=trusted.redirect_uri,
        scope=scope,
        code_challenge=challenge,
        state=state,
        nonce=nonce,
        prompt=prompt,
        max_age=_max_age(params.get("max_age")),
        acr_values=_bounded(params, "acr_values", 1024),
        resource=check_resource(params.get("resource")),
        authorization_details=_details(params.get("authorization_details")),
        dpop_jkt=_dpop_jkt(params.get("dpop_jkt")),
    )


def _bounded(params: Mapping[str, str], name: str, limit: int) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not value or len(value) > limit or not _PRINTABLE_ASCII.fullmatch(value):
        raise InvalidRequest(f"{name} must be 1 to {limit} printable ASCII characters")
    return value


def _scope(raw: str | None, client: Client, known: frozenset[str]) -> str:
    tokens = list(dict.fromkeys(["openid", *parse_scope(raw)]))
    unknown = [t for t in tokens if t not in known]
    if unknown:
        raise InvalidScope(f"scope not supported: {' '.join(unknown)[:200]}")
    if client.scope:
        refused = [t for t in tokens if t not in client.scope and t != "openid"]
        if refused:
            raise InvalidScope(f"scope not allowed for this client: {' '.join(refused)[:200]}")
    return " ".join(tokens)


def _prompt(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    values = tuple(dict.fromkeys(raw.split(" ")))
    if any(v not in _PROMPTS for v in values):
        raise InvalidRequest("prompt must be none, login, consent or select_account")
    if "none" in values:
        # OIDC Core 3.1.2.1: none with any other value is an error; alone it needs a session we do not keep.
        if len(values) > 1:
            raise InvalidRequest("prompt=none cannot be combined with other values")
        raise LoginRequired("every authorization needs a wallet signature; prompt=none cannot be honoured")
    return values


def _max_age(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 10:
        raise InvalidRequest("max_age must be a non-negative integer (seconds)")
    return int(raw)


def check_resource(raw: str | None) -> tuple[str, ...]:
    """RFC 8707 ``resource``: one absolute URI with an authority (``scheme://host...``), printable ASCII,
    without a fragment (the token's ``aud``), or none. A URN names no server to restrict a token to."""
    if raw is None:
        return ()
    parts = urlsplit(raw)
    printable = raw.isascii() and raw.isprintable() and " " not in raw  # RFC 3986 has no room for either
    if len(raw) > MAX_RESOURCE or not printable or not parts.scheme or not parts.netloc or "#" in raw:
        raise InvalidTarget(
            "resource must be an absolute URI with a host and without a fragment (RFC 8707 section 2)"
        )
    return (raw,)


def _details(raw: str | None) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ()
    return tuple(parse_authorization_details(raw))  # InvalidAuthorizationDetails is redirected, RFC 9396 5


def _dpop_jkt(raw: str | None) -> str | None:
    if raw is not None and not _JKT.fullmatch(raw):
        raise InvalidRequest("dpop_jkt must be a base64url SHA-256 JWK thumbprint (RFC 9449 section 10)")
    return raw
