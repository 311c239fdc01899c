"""``GET /openapi.json``: an OpenAPI 3.1 description of the HTTP API, built once from the table below.

One row per operation (path template as Starlette writes it, method, summary, request body, answers);
docs/API.md says what each does in words. tests/http/test_openapi.py holds the table and the app together
(every served route is described, every described route is served) and validates the document as OpenAPI
3.1. Error answers are RFC 6749 section 5.2 bodies (``OAuthError``), as app/http/errors.py renders them.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PATH = "/openapi.json"

Schema = dict[str, Any]


def _obj(required: tuple[str, ...] = (), **props: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    return schema


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
ANY_OBJECT: Schema = {"type": "object"}

SCHEMAS: dict[str, Schema] = {
    "OAuthError": _obj(
        ("error",),
        error={"type": "string", "description": "RFC 6749 section 5.2 error code, or an extension code"},
        error_description=STR,
    ),
    "TokenResponse": _obj(
        ("access_token", "token_type", "expires_in"),
        access_token={"type": "string", "description": "RFC 9068 JWT access token"},
        token_type={"type": "string", "enum": ["Bearer", "DPoP"]},
        expires_in=INT,
        scope=STR,
        id_token=STR,
        refresh_token=STR,
        authorization_details={"type": "array", "items": ANY_OBJECT},
    ),
    "NonceOffer": _obj(
        ("nonce", "scheme", "domain", "uri", "chain_id", "issued_at", "expiration_time"),
        nonce=STR,
        scheme=STR,
        domain=STR,
        uri=STR,
        chain_id=INT,
        issued_at={"type": "string", "format": "date-time"},
        expiration_time={"type": "string", "format": "date-time"},
    ),
    "NonceRequest": _obj(client_id=STR, oidc_nonce=STR),
    "SiweVerifyRequest": _obj(
        ("message", "signature"),
        message={"type": "string", "description": "the EIP-4361 text the wallet signed"},
        signature={"type": "string", "description": "0x-hex EIP-191, ERC-1271 or ERC-6492 signature"},
        client_id=STR,
        scope=STR,
        second_factor=ANY_OBJECT,
        acr_values=STR,
        max_age={"type": "integer", "minimum": 0},
        authorization_details={"type": ["array", "string"]},
        device_id=STR,
    ),
    "TokenRequest": _obj(
        ("grant_type",),
        grant_type={
            "type": "string",
            "enum": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
            ],
        },
        assertion=STR,
        code=STR,
        code_verifier=STR,
        redirect_uri=STR,
        refresh_token=STR,
        scope=STR,
        resource=STR,
        client_id=STR,
        client_secret=STR,
        client_assertion=STR,
        client_assertion_type=STR,
    ),
    "TokenForm": _obj(
        ("token",), token=STR, token_type_hint=STR, client_id=STR, client_secret=STR, client_assertion=STR
    ),
    "Introspection": _obj(("active",), active={"type": "boolean"}),
    "ParResponse": _obj(("request_uri", "expires_in"), request_uri=STR, expires_in=INT),
    "ClientMetadata": {"type": "object", "description": "RFC 7591 client metadata (docs/CLIENTS.md)"},
    "Jwks": _obj(("keys",), keys={"type": "array", "items": ANY_OBJECT}),
    "Status": _obj(("status",), status=STR),
    # GET /ready (app/http/readiness.py): one entry per dependency, keyed "database", "redis",
    # "chain:<id>", "audit_sink"; 503 bodies add the OAuthError fields and "failing".
    "Readiness": _obj(
        ("status",),
        status={"enum": ["ready", "not_ready", "draining"]},
        compliance=STR,
        checks={
            "type": "object",
            "additionalProperties": _obj(
                ("state", "ms"),
                state={"enum": ["up", "down"]},
                ms={"type": "number"},
                error=STR,
                block=INT,
                last_checkpoint=INT,
            ),
        },
        failing={"type": "array", "items": STR},
        audit_sink=ANY_OBJECT,
        error=STR,
        error_description=STR,
    ),
    "JsonRpc": {"type": "object", "description": "a JSON-RPC 2.0 request or response"},
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name_or_schema: str | Schema) -> dict[str, Any]:
    schema = _ref(name_or_schema) if isinstance(name_or_schema, str) else name_or_schema
    return {"application/json": {"schema": schema}}


def _form(name: str) -> dict[str, Any]:
    return {"application/x-www-form-urlencoded": {"schema": _ref(name)}}


ERROR = {"description": "RFC 6749 section 5.2 error", "content": _json("OAuthError")}
HTML = {"text/html": {"schema": STR}}

# (path, method, summary, request body content or None, {status: (description, content or None)})
Row = tuple[str, str, str, dict[str, Any] | None, dict[str, tuple[str, dict[str, Any] | None]]]

OPERATIONS: list[Row] = [
    (
        "/siwe/nonce",
        "post",
        "A single-use SIWE nonce",
        _json("NonceRequest"),
        {"201": ("the nonce", _json("NonceOffer"))},
    ),
    (
        "/siwe/verify",
        "post",
        "Sign in with a signed EIP-4361 message",
        _json("SiweVerifyRequest"),
        {"200": ("tokens", _json("TokenResponse"))},
    ),
    (
        "/token",
        "post",
        "RFC 6749 token endpoint",
        _form("TokenRequest"),
        {"200": ("tokens", _json("TokenResponse"))},
    ),
    (
        "/introspect",
        "post",
        "RFC 7662 token introspection",
        _form("TokenForm"),
        {"200": ("the token's state", _json("Introspection"))},
    ),
    (
        "/revoke",
        "post",
        "RFC 7009 token revocation",
        _form("TokenForm"),
        {"200": ("revoked (or unknown)", None)},
    ),
    (
        "/jwks",
        "get",
        "The public signing keys",
        None,
        {"200": ("JWK set", {"application/jwk-set+json": {"schema": _ref("Jwks")}})},
    ),
    (
        "/.well-known/openid-configuration",
        "get",
        "OIDC Discovery metadata",
        None,
        {"200": ("metadata", _json(ANY_OBJECT))},
    ),
    (
        "/.well-known/oauth-authorization-server",
        "get",
        "RFC 8414 metadata",
        None,
        {"200": ("metadata", _json(ANY_OBJECT))},
    ),
    ("/userinfo", "get", "OIDC UserInfo", None, {"200": ("claims", _json(ANY_OBJECT))}),
    ("/userinfo", "post", "OIDC UserInfo", None, {"200": ("claims", _json(ANY_OBJECT))}),
    (
        "/par",
        "post",
        "RFC 9126 pushed authorization request",
        {"application/x-www-form-urlencoded": {"schema": ANY_OBJECT}},
        {"201": ("the request URI", _json("ParResponse"))},
    ),
    (
        "/authorize",
        "get",
        "The hosted wallet sign-in page",
        None,
        {"200": ("the page", HTML), "303": ("redirect to the client", None)},
    ),
    (
        "/authorize",
        "post",
        "The hosted wallet sign-in page (form post)",
        {"application/x-www-form-urlencoded": {"schema": ANY_OBJECT}},
        {"200": ("the page", HTML), "303": ("redirect to the client", None)},
    ),
    (
        "/authorize/interactions/{interaction}/signin",
        "post",
        "The page's sign-in step",
        _json("SiweVerifyRequest"),
        {"200": ("the consent to show", _json(ANY_OBJECT))},
    ),
    (
        "/authorize/interactions/{interaction}/consent",
        "post",
        "The page's consent step",
        _json(ANY_OBJECT),
        {"200": ("where to send the browser", _json(_obj(("redirect_to",), redirect_to=STR)))},
    ),
    (
        "/authorize/interactions/{interaction}/back",
        "post",
        "The page's Back button: access_denied to the client",
        _json(ANY_OBJECT),
        {"200": ("where to send the browser", _json(_obj(("redirect_to",), redirect_to=STR)))},
    ),
    (
        "/logout",
        "get",
        "OIDC RP-Initiated Logout",
        None,
        {"200": ("signed-out page", HTML), "303": ("redirect", None)},
    ),
    (
        "/logout",
        "post",
        "OIDC RP-Initiated Logout (form post)",
        {"application/x-www-form-urlencoded": {"schema": ANY_OBJECT}},
        {"200": ("signed-out page", HTML), "303": ("redirect", None)},
    ),
    ("/mfa/factors", "get", "The wallet's second factors", None, {"200": ("factors", _json(ANY_OBJECT))}),
    ("/mfa/factors/{factor_id}", "delete", "Remove a second factor", None, {"204": ("removed", None)}),
    (
        "/mfa/totp",
        "post",
        "Start TOTP enrolment",
        _json(ANY_OBJECT),
        {"201": ("the secret to confirm", _json(ANY_OBJECT))},
    ),
    (
        "/mfa/totp/confirm",
        "post",
        "Confirm TOTP enrolment",
        _json(ANY_OBJECT),
        {"200": ("enrolled", _json(ANY_OBJECT))},
    ),
    (
        "/mfa/recovery-codes",
        "post",
        "New recovery codes",
        _json(ANY_OBJECT),
        {"201": ("the codes, shown once", _json(ANY_OBJECT))},
    ),
    (
        "/mfa/webauthn/registration",
        "post",
        "Passkey registration options",
        _json(ANY_OBJECT),
        {"200": ("options", _json(ANY_OBJECT))},
    ),
    (
        "/mfa/webauthn/registration/finish",
        "post",
        "Finish a passkey registration",
        _json(ANY_OBJECT),
        {"201": ("registered", _json(ANY_OBJECT))},
    ),
    (
        "/mfa/webauthn/assertion",
        "post",
        "Passkey assertion options",
        _json(ANY_OBJECT),
        {"200": ("options", _json(ANY_OBJECT))},
    ),
    (
        "/register",
        "post",
        "RFC 7591 dynamic client registration",
        _json("ClientMetadata"),
        {"201": ("the client", _json("ClientMetadata"))},
    ),
    (
        "/register/{client_id}",
        "get",
        "RFC 7592 read a client",
        None,
        {"200": ("the client", _json("ClientMetadata"))},
    ),
    (
        "/register/{client_id}",
        "put",
        "RFC 7592 update a client",
        _json("ClientMetadata"),
        {"200": ("the client", _json("ClientMetadata"))},
    ),
    ("/register/{client_id}", "delete", "RFC 7592 delete a client", None, {"204": ("deleted", None)}),
    ("/health", "get", "The process answers", None, {"200": ("ok", _json("Status"))}),
    (
        "/delegations",
        "post",
        "Create a delegation: a wallet-signed EIP-4361 message with an EIP-5573 ReCap naming a bot's key",
        _json(_obj(("message", "signature"), message=STR, signature=STR)),
        {"201": ("the delegation", _json(ANY_OBJECT))},
    ),
    (
        "/delegations",
        "get",
        "The signed-in wallet's delegations (access token required)",
        None,
        {"200": ("the delegations", _json(ANY_OBJECT))},
    ),
    (
        "/delegations/{delegation_id}",
        "delete",
        "Revoke one of the signed-in wallet's delegations",
        None,
        {"204": ("revoked", None)},
    ),
    (
        "/delegations/manage",
        "get",
        "The hosted page where a wallet creates, lists and revokes its delegations",
        None,
        {"200": ("the page", HTML)},
    ),
    (
        "/demo",
        "get",
        "Development only: the frontend-demo dApp (static files under /demo/)",
        None,
        {"200": ("the page", HTML)},
    ),
    (
        "/demo/config.json",
        "get",
        "Development only: the demo dApp's issuer, client, chain and API URLs",
        None,
        {"200": ("the configuration", _json(ANY_OBJECT))},
    ),
    (
        "/demo/keccak.js",
        "get",
        "Development only: the EIP-55 checksum script the demo shares with the hosted page",
        None,
        {"200": ("the script", {"text/javascript": {"schema": STR}})},
    ),
    (
        "/ready",
        "get",
        "Database, Redis, the chains' RPC and the audit sink answer, each probed within 2 s",
        None,
        {
            "200": ("ready, with every check", _json("Readiness")),
            "503": ("not ready (the failing checks named) or draining", _json("Readiness")),
        },
    ),
    (
        "/metrics",
        "get",
        "Prometheus text format (PORTCULLIS_METRICS=on)",
        None,
        {"200": ("samples", {"text/plain": {"schema": STR}})},
    ),
    ("/openapi.json", "get", "This document", None, {"200": ("OpenAPI 3.1", _json(ANY_OBJECT))}),
    (
        "/dev/chain/info",
        "get",
        "The development chain (development only)",
        None,
        {"200": ("chain id, registry, accounts", _json(ANY_OBJECT))},
    ),
    (
        "/dev/chain/rpc",
        "post",
        "The development chain's JSON-RPC (development only)",
        _json("JsonRpc"),
        {"200": ("JSON-RPC answer", _json("JsonRpc"))},
    ),
]


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every operation in :data:`OPERATIONS`."""
    paths: dict[str, dict[str, Any]] = {}
    for path, method, summary, body, answers in OPERATIONS:
        responses: dict[str, Any] = {}
        for status, (description, content) in answers.items():
            responses[status] = {"description": description, **({"content": content} if content else {})}
        responses["default"] = ERROR
        operation: dict[str, Any] = {"summary": summary, "responses": responses}
        if body is not None:
            operation["requestBody"] = {
                "required": method != "post" or path != "/siwe/nonce",
                "content": body,
            }
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": STR} for name in params
            ]
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Portcullis",
            "version": version("portcullis"),
            "description": "Sign-In with Ethereum in, OpenID Connect tokens out (docs/API.md).",
        },
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }


def openapi_route() -> Route:
    body = json.dumps(document(), separators=(",", ":")).encode()  # built once per app

    async def openapi(_request: Request) -> Response:
        return Response(body, media_type="application/json", headers={"Cache-Control": "max-age=300"})

    return Route(PATH, openapi, methods=["GET"])
