"""RFC 7591 sections 2 and 3 dynamic client registration, RFC 7592 client configuration: the pure part.

From a request body to a checked :class:`~app.oauth.clients.Client`, and from a client to the client
information response (RFC 7591 section 3.2.1, RFC 7592 section 3). No I/O here: app.oauth.registrar
issues the secrets, stores the client and keeps the registry current.

- Metadata this server does not understand is ignored (RFC 7591 section 2: "MUST ignore"); the response
  shows what was registered. A ``null`` value counts as absent (RFC 7592 section 2.2).
- Defaults (RFC 7591 section 2): ``token_endpoint_auth_method`` ``client_secret_basic``, ``grant_types``
  ``["authorization_code"]``, ``response_types`` ``["code"]`` (``[]`` when ``authorization_code`` is not
  among the grant types, so that a ``client_credentials`` client is consistent by default).
- ``invalid_client_metadata``: what is not implemented (response types other than ``code``, other auth
  methods or grant types, ``none`` with ``client_credentials``, ``private_key_jwt`` without inline
  ``jwks``), scopes the policy does not offer, token lifetimes above the server's, grant and response
  types that contradict each other, and fields only the server assigns (``client_id``, ``client_secret``).
- ``invalid_redirect_uri``: a redirect URI that is not absolute, has a fragment, or is ``http`` on a host
  other than a loopback one (RFC 8252 section 7.3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from app.errors import InvalidClientMetadata, InvalidRedirectUri, InvalidRequest, OAuthError
from app.oauth.clients import Client, describe_errors, verify_client_secret

# The RFC 7591 section 2 fields (and our extensions, docs/CLIENTS.md) a client may register.
REGISTRABLE = (
    "client_name",
    "redirect_uris",
    "post_logout_redirect_uris",
    "grant_types",
    "response_types",
    "scope",
    "token_endpoint_auth_method",
    "jwks",
    "jwks_uri",
    "access_token_lifetime",
    "refresh_token_lifetime",
    "siwe_domains",
    "allowed_origins",
    "dpop_bound_access_tokens",
    "require_pushed_authorization_requests",
)
# RFC 7592 section 2.2: a client MUST NOT send these in an update; at registration they are ours to set.
ISSUED_BY_SERVER = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
DEFAULT_AUTH_METHOD = "client_secret_basic"
_URI_FIELDS = frozenset({"redirect_uris", "post_logout_redirect_uris"})


@dataclass(frozen=True, slots=True)
class RegistrationRules:
    """What a dynamic client may ask for: the policy's scopes, at most the server's token lifetimes."""

    scopes: frozenset[str]
    max_access_token_lifetime: int
    max_refresh_token_lifetime: int


def registration_token_hash(token: str) -> str:
    """How registration and initial access tokens are kept and compared: hex SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def registration_client_uri(issuer: str, client_id: str) -> str:
    """RFC 7592 section 3: the client configuration endpoint of ``client_id``."""
    return f"{issuer}/register/{quote(client_id, safe='')}"


def requested_metadata(body: Mapping[str, Any]) -> dict[str, Any]:
    """The registrable fields of a registration request (RFC 7591 section 3.1), defaults applied."""
    for name in ("client_id", "client_secret", *ISSUED_BY_SERVER):
        if name in body:
            raise InvalidClientMetadata(f"{name} is assigned by the server, not chosen by the client")
    return _with_defaults(body)


def replacement_metadata(body: Mapping[str, Any], current: Client) -> dict[str, Any]:
    """The fields of an RFC 7592 section 2.2 update request: the whole new metadata, defaults applied.

    The body must name the client by its ``client_id``; it may repeat the issued ``client_secret`` but
    never choose another one, and must not carry the fields only the server issues.
    """
    if body.get("client_id") != current.client_id:
        raise InvalidRequest("client_id is required and must be this client's client_id (RFC 7592 2.2)")
    for name in ISSUED_BY_SERVER:
        if name in body:
            raise InvalidRequest(f"{name} must not be sent in an update request (RFC 7592 section 2.2)")
    secret = body.get("client_secret")
    if secret is not None and not (
        isinstance(secret, str)
        and current.client_secret_hash is not None
        and verify_client_secret(secret, current.client_secret_hash)
    ):
        raise InvalidRequest(
            "client_secret does not match the issued secret; a client cannot choose its secret"
        )
    return _with_defaults(body)


def _with_defaults(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = {name: body[name] for name in REGISTRABLE if body.get(name) is not None}
    metadata.setdefault("token_endpoint_auth_method", DEFAULT_AUTH_METHOD)
    metadata.setdefault("grant_types", ["authorization_code"])
    if "response_types" not in metadata:
        grants = metadata["grant_types"]
        code = isinstance(grants, list) and "authorization_code" in grants
        metadata["response_types"] = ["code"] if code else []
    return metadata


def uses_secret(metadata: Mapping[str, Any]) -> bool:
    """Does the requested auth method need a client secret (which the server then issues)?"""
    method = metadata.get("token_endpoint_auth_method")
    return isinstance(method, str) and method in SECRET_METHODS


def build_client(
    metadata: Mapping[str, Any], *, client_id: str, client_secret_hash: str | None, rules: RegistrationRules
) -> Client:
    """The checked client, or :class:`InvalidRedirectUri` / :class:`InvalidClientMetadata` saying why not."""
    try:
        client = Client.model_validate(
            {**metadata, "client_id": client_id, "client_secret_hash": client_secret_hash}
        )
    except ValidationError as exc:
        raise _metadata_error(exc) from None
    _check_rules(client, rules)
    return client


def _metadata_error(exc: ValidationError) -> OAuthError:
    uri_problem = any(err["loc"] and err["loc"][0] in _URI_FIELDS for err in exc.errors())
    error = InvalidRedirectUri if uri_problem else InvalidClientMetadata
    return error(describe_errors(exc))


def _check_rules(client: Client, rules: RegistrationRules) -> None:
    if client.jwks_uri is not None:
        # Fetching a URI a stranger registered would let anyone make this server call inside its network
        # (SSRF); only the operator's clients file may name a jwks_uri.
        raise InvalidClientMetadata("jwks_uri: register the public keys inline as jwks")
    unknown = [s for s in client.scope if s not in rules.scopes]
    if unknown:
        raise InvalidClientMetadata(f"scope: {unknown[0][:64]!r} is not offered by this server")
    lifetimes = (
        ("access_token_lifetime", client.access_token_lifetime, rules.max_access_token_lifetime),
        ("refresh_token_lifetime", client.refresh_token_lifetime, rules.max_refresh_token_lifetime),
    )
    for name, value, limit in lifetimes:
        if value is not None and value > limit:
            raise InvalidClientMetadata(f"{name}: at most {limit} seconds (the server's lifetime)")
    code_grant = "authorization_code" in client.grant_types
    if code_grant != ("code" in client.response_types):
        # RFC 7591 section 2.1: response type "code" goes with grant type "authorization_code".
        raise InvalidClientMetadata(
            "grant_types and response_types: 'code' and 'authorization_code' go together"
        )
    if "refresh_token" in client.grant_types and not code_grant:
        # RFC 6749 section 4.4.3: client_credentials issues no refresh token; only the code grant does here.
        raise InvalidClientMetadata("grant_types: refresh_token needs authorization_code")


def stored_metadata(client: Client) -> str:
    """What ``registered_clients.metadata_json`` holds: the client as JSON, its secret as a hash only."""
    return client.model_dump_json()


def stored_client(metadata_json: str) -> Client:
    """The client back from its stored JSON (raises pydantic's ValidationError if it no longer validates)."""
    return Client.model_validate_json(metadata_json)


def public_metadata(client: Client) -> dict[str, Any]:
    """The registered metadata without the secret's hash: for responses and for the audit trail."""
    data = client.model_dump(mode="json", exclude={"client_secret_hash"})
    return {name: value for name, value in data.items() if value is not None}


def changed_fields(before: Client, after: Client) -> list[str]:
    """Names of the fields an update changed (a new or dropped secret shows as ``client_secret``)."""
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    names = [name for name in new if name != "client_secret_hash" and old.get(name) != new[name]]
    if old.get("client_secret_hash") != new.get("client_secret_hash"):
        names.append("client_secret")
    return sorted(names)


def client_information(
    client: Client,
    *,
    issued_at: datetime,
    registration_client_uri: str,
    registration_access_token: str,
    client_secret: str | None = None,
) -> dict[str, Any]:
    """RFC 7591 section 3.2.1 / RFC 7592 section 3 client information response.

    ``client_secret`` only when it was issued by this very request: the server keeps its hash alone.
    The registration access token is the one issued now, or the one the client presented (RFC 7592
    section 3 requires it in every response; the server keeps its hash alone).
    """
    info = public_metadata(client)
    info.pop("scope")
    if client.scope:
        info["scope"] = " ".join(client.scope)  # RFC 7591 section 2: a space-separated string
    info["client_id_issued_at"] = int(issued_at.timestamp())
    if client.client_secret_hash is not None:
        info["client_secret_expires_at"] = 0  # RFC 7591 section 3.2.1: 0 means it does not expire
    if client_secret is not None:
        info["client_secret"] = client_secret
    info["registration_access_token"] = registration_access_token
    info["registration_client_uri"] = registration_client_uri
    return info
