"""Negative tests of the authorization-code flow, named after the OpenID Foundation conformance suite's
modules (``fapi2-security-profile-final-*``, ``oidcc-*``) where one exists; the rest cover RFC 6749, RFC 7523,
RFC 7636, RFC 9126, RFC 9449 and the hosted wallet page's own steps.

Every test checks the status, the error code (JSON body, redirect parameter or error page), and that nothing
was issued: no token in the body, and where a code, a request URI or a token family could have come into
being, that it is absent, unusable, or still unspent by the refused request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import FakeClock, Harness, make_settings, running_app, sign
from tests.flow.client import (
    Authorized,
    Flow,
    Key,
    authorize,
    b64url,
    dpop_proof,
    fapi_client,
    page_headers,
    page_view,
    pkce_pair,
    redirect_params,
    siwe_message,
    wallet_signs,
    write_clients,
)

ISSUER = "http://127.0.0.1:8000"
CB = "https://dapp.example/cb"
OTHER_CB = "https://other.example/cb"
BROKER_CB = "https://broker.example/cb"
SECRET = "a-long-client-secret-for-the-broker-0123456789"
POSTER_SECRET = "another-long-client-secret-for-the-poster-98765"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
COOKIE = "portcullis_interaction"
TOKENS = ("access_token", "refresh_token", "id_token")


@dataclass
class ClockFlow(Flow):
    """A ``Flow`` whose client assertions and DPoP proofs are dated by the server's fake clock, so that tests
    which move the clock (expired codes, request URIs) still present fresh credentials."""

    clock: FakeClock | None = None

    def _now(self) -> int:
        assert self.clock is not None
        return int(self.clock.now().timestamp())

    def client_auth(self) -> dict[str, str]:
        if self.key is None:
            return super().client_auth()
        return assertion_fields(self.client_id, assertion(self.key, self.client_id, now=self._now()))

    def dpop_header(self, htm: str, path: str, **kw: Any) -> dict[str, str]:
        if self.dpop is None:
            return {}
        kw.setdefault("iat", self._now())
        return {"DPoP": dpop_proof(self.dpop, htm, f"{self.issuer}{path}", **kw)}


@dataclass
class Rp:
    """The in-process server and the registered clients' keys."""

    h: Harness
    key: Key  # perps-dapp (FAPI 2.0, private_key_jwt, PAR and DPoP required)
    other_key: Key  # other-fapi (the same profile, another client)

    def fapi(self, **over: Any) -> ClockFlow:
        values: dict[str, Any] = {"key": self.key, "dpop": Key(), "clock": self.h.clock, **over}
        return ClockFlow(self.h.client, ISSUER, "perps-dapp", CB, **values)

    def other(self) -> ClockFlow:
        return ClockFlow(
            self.h.client, ISSUER, "other-fapi", OTHER_CB, key=self.other_key, dpop=Key(), clock=self.h.clock
        )

    def broker(self) -> ClockFlow:
        """client_secret_basic; Flow still sends client_id in the body, which RFC 6749 2.3.1 tolerates."""
        return ClockFlow(
            self.h.client,
            ISSUER,
            "broker",
            BROKER_CB,
            auth_headers=basic("broker", SECRET),
            clock=self.h.clock,
        )


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def clients(key: Key, other_key: Key) -> list[dict[str, Any]]:
    return [
        fapi_client("perps-dapp", key, CB, scope="openid profile portfolio:read"),
        fapi_client("other-fapi", other_key, OTHER_CB),
        {
            "client_id": "broker",
            "redirect_uris": [BROKER_CB],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret": SECRET,
        },
        {
            "client_id": "poster",
            "redirect_uris": ["https://poster.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "client_secret_post",
            "client_secret": POSTER_SECRET,
        },
    ]


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, database_url: str) -> AsyncIterator[Rp]:
    key, other_key = Key(), Key()
    clients_file = write_clients(tmp_path / "clients.json", clients(key, other_key))
    settings = make_settings(tmp_path, database_url=database_url, clients_file=clients_file)
    async with running_app(settings, FakeClock()) as harness:
        yield Rp(harness, key, other_key)


@pytest.fixture
async def rp(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Rp]:
    async with serving(tmp_path, sqlite_url) as running:
        yield running


@pytest.fixture
async def rp_any_db(tmp_path: Path, database_url: str) -> AsyncIterator[Rp]:
    """The same server on SQLite and on PostgreSQL (skipped there when no server is configured)."""
    async with serving(tmp_path, database_url) as running:
        yield running


@contextlib.asynccontextmanager
async def browser(h: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """Another user agent with its own cookie jar."""
    transport = httpx.ASGITransport(app=h.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


# ---------------------------------------------------------------------------------------------- helpers


def assertion_fields(client_id: str | None, token: str) -> dict[str, str]:
    fields = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token}
    return {"client_id": client_id, **fields} if client_id else fields


def assertion_claims(client_id: str, *, now: int, **over: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + 60,
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def assertion(key: Key, client_id: str, *, now: int, kid: str | None = None, **over: Any) -> str:
    claims = assertion_claims(client_id, now=now, **over)
    return jwt.encode(claims, key.private, algorithm="ES256", headers={"kid": kid or key.kid})


def raw_jws(header: dict[str, Any], claims: dict[str, Any], signer: Callable[[bytes], bytes]) -> str:
    """A compact JWS put together by hand (for algorithms a JWT library refuses to produce)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(signer(signing_input.encode()))}"


def public_pem(key: Key) -> bytes:
    return key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def now_of(rp: Rp) -> int:
    return int(rp.h.clock.now().timestamp())


def code_form(got: Authorized, redirect_uri: str = CB, **over: str) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": got.code,
        "code_verifier": got.verifier,
        "redirect_uri": redirect_uri,
    }
    form.update(over)
    return {k: v for k, v in form.items() if v != ""}


def assert_error(reply: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """A JSON error with this status and code, and no token in it."""
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()
    assert body["error"] == error, body
    assert not set(TOKENS) & body.keys(), body
    assert reply.headers["cache-control"] == "no-store"
    return body


def assert_redirected_error(
    reply: httpx.Response, redirect_uri: str, error: str, state: str
) -> dict[str, str]:
    """RFC 6749 4.1.2.1: back to the (trusted) redirect URI with ``state`` and RFC 9207 ``iss``; no code."""
    assert reply.status_code == 303, reply.text[:300]
    location = reply.headers["location"]
    assert location.split("?")[0] == redirect_uri, location
    params = redirect_params(location)
    assert params["error"] == error and params["state"] == state and params["iss"] == ISSUER, params
    assert "code" not in params, params
    assert COOKIE not in reply.headers.get("set-cookie", ""), "no interaction was started"
    return params


def assert_error_page(reply: httpx.Response, error: str, *words: str) -> None:
    """RFC 6749 4.1.2.1: shown to the user, never redirected; no interaction was started."""
    assert reply.status_code == 400, reply.text[:300]
    assert "location" not in reply.headers
    assert reply.headers["content-type"].startswith("text/html")
    assert error in reply.text, reply.text[:500]
    for word in words:
        assert word in reply.text, reply.text[:500]
    assert "portcullis-interaction" not in reply.text
    assert COOKIE not in reply.headers.get("set-cookie", "")


async def redeem(flow: Flow, got: Authorized, **over: str) -> httpx.Response:
    return await flow.token(code_form(got, over.pop("redirect_uri", flow.redirect_uri), **over))


async def assert_code_still_redeemable(flow: Flow, got: Authorized) -> dict[str, Any]:
    """The refused request did not spend the code: its client can still redeem it, once."""
    reply = await redeem(flow, got)
    assert reply.status_code == 200, reply.text
    tokens: dict[str, Any] = reply.json()
    return tokens


async def introspect(flow: Flow, token: str) -> dict[str, Any]:
    reply = await flow.http.post(
        "/introspect", data={**flow.client_auth(), "token": token}, headers=flow.auth_headers
    )
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def authorization_params(client_id: str, redirect_uri: str | None, **over: str | None) -> dict[str, str]:
    _, challenge = pkce_pair()
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(over)
    return {k: v for k, v in params.items() if v is not None}


def form_body(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """A form body that may repeat a parameter (httpx's ``data`` cannot)."""
    return {
        "content": urlencode(pairs),
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }


def assert_not_pushed(reply: httpx.Response, status: int, error: str) -> None:
    body = assert_error(reply, status, error)
    assert "request_uri" not in body


# ------------------------------------------------------------------------ authorization request (PAR, PKCE)


async def test_ensure_redirect_uri_in_authorization_request_par(rp: Rp) -> None:
    """fapi2-security-profile-final-ensure-redirect-uri-in-authorization-request: FAPI 2.0 SP 5.3.2.2 (the AS
    shall require redirect_uri in pushed requests) and OIDC Core 3.1.2.1 (REQUIRED), even though the client
    registered a single redirect URI."""
    flow = rp.fapi()
    reply = await flow.push(**authorization_params("perps-dapp", None))
    assert_not_pushed(reply, 400, "invalid_request")
    assert "redirect_uri" in reply.json()["error_description"]


async def test_ensure_redirect_uri_in_authorization_request_plain(rp: Rp) -> None:
    """oidcc-ensure-redirect-uri-in-authorization-request: without redirect_uri an OpenID request is shown an
    error page (nothing is trusted to redirect to), even for a client with one registered redirect URI."""
    reply = await rp.h.client.get("/authorize", params=authorization_params("broker", None))
    assert_error_page(reply, "invalid_request", "redirect_uri")


async def test_par_ensure_pkce_required(rp: Rp) -> None:
    """fapi2-security-profile-final-par-ensure-pkce-required (RFC 7636, FAPI 2.0 SP 5.3.2.2)."""
    params = authorization_params("perps-dapp", CB, code_challenge=None, code_challenge_method=None)
    assert_not_pushed(await rp.fapi().push(**params), 400, "invalid_request")


async def test_par_plain_pkce_rejected(rp: Rp) -> None:
    """fapi2-security-profile-final-par-plain-pkce-rejected: only S256."""
    verifier, _ = pkce_pair()
    params = authorization_params("perps-dapp", CB, code_challenge=verifier, code_challenge_method="plain")
    assert_not_pushed(await rp.fapi().push(**params), 400, "invalid_request")


async def test_par_ensure_pkce_method_required(rp: Rp) -> None:
    """RFC 7636 4.3 defaults a missing method to plain, which FAPI 2.0 refuses."""
    params = authorization_params("perps-dapp", CB, code_challenge_method=None)
    assert_not_pushed(await rp.fapi().push(**params), 400, "invalid_request")


async def test_par_authorization_request_containing_request_uri_form_param(rp: Rp) -> None:
    """fapi2-security-profile-final-par-authorization-request-containing-request_uri-form-param (RFC 9126
    section 2.1: request_uri must not be pushed)."""
    params = authorization_params("perps-dapp", CB, request_uri="urn:ietf:params:oauth:request_uri:abc")
    assert_not_pushed(await rp.fapi().push(**params), 400, "invalid_request")


async def test_par_without_duplicate_parameters(rp: Rp) -> None:
    """fapi2-security-profile-final-par-without-duplicate-parameters (RFC 6749 3.1: none repeated)."""
    flow = rp.fapi()
    params = authorization_params("perps-dapp", CB)
    body = form_body([*flow.client_auth().items(), *params.items(), ("scope", "openid profile")])
    body["headers"] |= flow.dpop_header("POST", "/par")
    reply = await rp.h.client.post("/par", **body)
    assert_not_pushed(reply, 400, "invalid_request")


async def test_par_redirect_uri_not_registered(rp: Rp) -> None:
    """fapi2-security-profile-final-ensure-registered-redirect-uri, at the PAR endpoint: a JSON error."""
    params = authorization_params("perps-dapp", "https://dapp.example/cb/evil")
    assert_not_pushed(await rp.fapi().push(**params), 400, "invalid_request")


@pytest.mark.parametrize(
    "response_type", ["token", "code id_token", "id_token"], ids=["token", "code-idtoken", "idtoken"]
)
async def test_ensure_response_type_fails_at_par(rp: Rp, response_type: str) -> None:
    """fapi2-security-profile-final-ensure-response-type-token-fails / -code-idtoken-fails, pushed."""
    params = authorization_params("perps-dapp", CB, response_type=response_type)
    assert_not_pushed(await rp.fapi().push(**params), 400, "unsupported_response_type")


async def test_par_attempt_reuse_request_uri(rp: Rp, wallet: Any) -> None:
    """fapi2-security-profile-final-par-attempt-reuse-request_uri (RFC 9126 section 4: one-time use)."""
    flow = rp.fapi()
    pushed = await flow.push(**authorization_params("perps-dapp", CB))
    assert pushed.status_code == 201, pushed.text
    query = {"client_id": "perps-dapp", "request_uri": pushed.json()["request_uri"]}
    first = await flow.open_page(query)
    assert first.status_code == 200
    async with browser(rp.h) as other:
        again = await other.get("/authorize", params=query)
    assert_error_page(again, "invalid_request_uri", "already been used")


async def test_par_attempt_to_use_expired_request_uri(rp: Rp) -> None:
    """fapi2-security-profile-final-par-attempt-to-use-expired-request_uri (RFC 9126 section 4)."""
    flow = rp.fapi()
    pushed = await flow.push(**authorization_params("perps-dapp", CB))
    assert pushed.status_code == 201, pushed.text
    assert pushed.json()["expires_in"] <= 60
    rp.h.clock.advance(pushed.json()["expires_in"] + 1)
    reply = await flow.open_page({"client_id": "perps-dapp", "request_uri": pushed.json()["request_uri"]})
    assert_error_page(reply, "invalid_request_uri", "expired")


async def test_par_attempt_to_use_request_uri_for_different_client(rp: Rp) -> None:
    """fapi2-security-profile-final-par-attempt-to-use-request_uri-for-different-client."""
    pushed = await rp.fapi().push(**authorization_params("perps-dapp", CB))
    assert pushed.status_code == 201, pushed.text
    query = {"client_id": "other-fapi", "request_uri": pushed.json()["request_uri"]}
    reply = await rp.h.client.get("/authorize", params=query)
    assert_error_page(reply, "invalid_request_uri")
    # the legitimate client's request URI was not used up by the refused attempt
    mine = await rp.h.client.get("/authorize", params={**query, "client_id": "perps-dapp"})
    assert mine.status_code == 200 and page_view(mine)["client"]["client_id"] == "perps-dapp"


async def test_ensure_unsigned_authorization_request_without_using_par_fails(rp: Rp) -> None:
    """fapi2-security-profile-final-ensure-unsigned-authorization-request-without-using-par-fails: the FAPI
    client must push (RFC 9126 section 4: invalid_request, sent back to its redirect URI)."""
    params = authorization_params("perps-dapp", CB)
    reply = await rp.h.client.get("/authorize", params=params)
    assert_redirected_error(reply, CB, "invalid_request", params["state"])


# ------------------------------------------------------------- authorization request (plain, error page)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://broker.example/other",  # another path
        "https://broker.example/cb?extra=1",  # an added query
        "https://BROKER.example/cb",  # host case
        "https://broker.example/CB",  # path case
        "https://broker.example/cb/",  # trailing slash
        "http://broker.example/cb",  # scheme
        "https://broker.example:443/cb",  # explicit default port
        "https://broker.example/cb#frag",  # fragment
    ],
    ids=["path", "query", "host-case", "path-case", "trailing-slash", "scheme", "port", "fragment"],
)
async def test_ensure_registered_redirect_uri(rp: Rp, redirect_uri: str) -> None:
    """fapi2-security-profile-final-ensure-registered-redirect-uri / oidcc-ensure-registered-redirect-uri /
    oidcc-redirect-uri-query-added: exact string match (RFC 9700 4.1.3); shown on a page, not redirected."""
    reply = await rp.h.client.get("/authorize", params=authorization_params("broker", redirect_uri))
    assert_error_page(reply, "invalid_request", "redirect_uri")


@pytest.mark.parametrize(
    ("missing", "trusted"),
    [("response_type", True), ("code_challenge", True), ("client_id", False)],
)
async def test_missing_parameter(rp: Rp, missing: str, trusted: bool) -> None:
    """oidcc-response-type-missing and friends: invalid_request; redirected only once the client and its
    redirect URI are known (RFC 6749 4.1.2.1)."""
    params = authorization_params("broker", BROKER_CB)
    del params[missing]
    reply = await rp.h.client.get("/authorize", params=params)
    if trusted:
        assert_redirected_error(reply, BROKER_CB, "invalid_request", params["state"])
    else:
        assert_error_page(reply, "invalid_request", "client_id")


async def test_duplicated_parameter_in_query(rp: Rp) -> None:
    """RFC 6749 3.1: parameters must not be included more than once; the request cannot be trusted to
    redirect (which scope, which redirect_uri?), so an error page."""
    params = [*authorization_params("broker", BROKER_CB).items(), ("scope", "openid profile")]
    reply = await rp.h.client.get("/authorize", params=urlencode(params))
    assert_error_page(reply, "invalid_request", "more than once")


async def test_duplicated_parameter_in_form_post(rp: Rp) -> None:
    """OIDC Core 3.1.2.1 allows POST to the authorization endpoint; repeated parameters are refused too."""
    params = [*authorization_params("broker", BROKER_CB).items(), ("scope", "openid profile")]
    reply = await rp.h.client.post("/authorize", **form_body(params))
    assert_error_page(reply, "invalid_request", "more than once")


async def test_ensure_response_type_token_fails(rp: Rp) -> None:
    """fapi2-security-profile-final-ensure-response-type-token-fails: unsupported_response_type, redirected
    with state and iss."""
    params = authorization_params("broker", BROKER_CB, response_type="token")
    reply = await rp.h.client.get("/authorize", params=params)
    assert_redirected_error(reply, BROKER_CB, "unsupported_response_type", params["state"])


async def test_prompt_none_login_required(rp: Rp) -> None:
    """oidcc-prompt-none-not-logged-in: OIDC Core 3.1.2.6 login_required (every sign-in needs a signature)."""
    params = authorization_params("broker", BROKER_CB, prompt="none")
    reply = await rp.h.client.get("/authorize", params=params)
    assert_redirected_error(reply, BROKER_CB, "login_required", params["state"])


async def test_unknown_scope_invalid_scope(rp: Rp) -> None:
    """RFC 6749 4.1.2.1 invalid_scope, redirected."""
    params = authorization_params("broker", BROKER_CB, scope="openid launch:missiles")
    reply = await rp.h.client.get("/authorize", params=params)
    assert_redirected_error(reply, BROKER_CB, "invalid_scope", params["state"])


async def test_unknown_client_error_page(rp: Rp) -> None:
    """RFC 6749 4.1.2.1: an invalid client identifier is shown to the user, never redirected. A 400 page, as
    for an unknown client_id with a request_uri (a 401 would need a WWW-Authenticate challenge, RFC 9110
    15.5.2, and there is no authentication to ask for at this endpoint)."""
    reply = await rp.h.client.get("/authorize", params=authorization_params("nobody", BROKER_CB))
    assert_error_page(reply, "invalid_request", "not registered")
    pushed_style = await rp.h.client.get(
        "/authorize", params={"client_id": "nobody", "request_uri": "urn:ietf:params:oauth:request_uri:x"}
    )
    assert_error_page(pushed_style, "invalid_request", "not registered")


# ------------------------------------------------------------------------------------ PKCE at the token


async def test_ensure_pkce_code_verifier_required(rp: Rp, wallet: Any) -> None:
    """fapi2-security-profile-final-ensure-pkce-code-verifier-required: invalid_grant (RFC 7636 4.6)."""
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    assert_error(await redeem(flow, got, code_verifier=""), 400, "invalid_grant")
    await assert_code_still_redeemable(flow, got)


async def test_incorrect_pkce_code_verifier_rejected(rp: Rp, wallet: Any) -> None:
    """fapi2-security-profile-final-incorrect-pkce-code-verifier-rejected."""
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    wrong, _ = pkce_pair()
    assert_error(await redeem(flow, got, code_verifier=wrong), 400, "invalid_grant")
    await assert_code_still_redeemable(flow, got)


# ------------------------------------------------------------------------------------- the code itself


async def test_ensure_authorization_code_is_single_use(rp_any_db: Rp, wallet: Any) -> None:
    """fapi2-security-profile-final-attempt-reuse-authorization-code-after-one-second / oidcc-codereuse:
    the second use fails, and what the first use issued is revoked (RFC 6749 4.1.2, RFC 9700 4.5.3)."""
    rp = rp_any_db
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    first = await redeem(flow, got)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert (await introspect(flow, tokens["access_token"]))["active"] is True
    rp.h.clock.advance(1)
    assert_error(await redeem(flow, got), 400, "invalid_grant")
    assert await introspect(flow, tokens["access_token"]) == {"active": False}
    assert await introspect(flow, tokens["refresh_token"]) == {"active": False}
    refreshed = await flow.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert_error(refreshed, 400, "invalid_grant")


async def test_concurrent_code_redemption_issues_once(rp_any_db: Rp, wallet: Any) -> None:
    """The code is consumed by one conditional UPDATE: of two simultaneous redemptions exactly one gets
    tokens, the other invalid_grant, and the loser's reuse report revokes the winner's session."""
    rp = rp_any_db
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    replies = await asyncio.gather(redeem(flow, got), redeem(flow, got))
    ok = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code != 200]
    assert len(ok) == 1 and len(refused) == 1, [r.text for r in replies]
    assert_error(refused[0], 400, "invalid_grant")
    tokens = ok[0].json()
    assert await introspect(flow, tokens["access_token"]) == {"active": False}
    refreshed = await flow.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert_error(refreshed, 400, "invalid_grant")


async def test_ensure_token_endpoint_fails_with_expired_auth_code(rp: Rp, wallet: Any) -> None:
    """fapi2-security-profile-final-ensure-token-endpoint-fails-with-expired-auth-code: codes live 60 s at
    most (FAPI 2.0 SP 5.3.2.1)."""
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    rp.h.clock.advance(rp.h.settings.authorization_code_ttl_seconds + 1)
    body = assert_error(await redeem(flow, got), 400, "invalid_grant")
    assert "expired" in body["error_description"]
    assert_error(await redeem(flow, got), 400, "invalid_grant")  # and stays unusable


async def test_ensure_authorization_code_is_bound_to_client(rp: Rp, wallet: Any) -> None:
    """fapi2-security-profile-final-ensure-authorization-code-is-bound-to-client: client B, properly
    authenticated, presents client A's code (RFC 6749 4.1.3)."""
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    thief = rp.other()
    assert_error(await redeem(thief, got, redirect_uri=CB), 400, "invalid_grant")
    await assert_code_still_redeemable(flow, got)


async def test_ensure_client_id_in_token_endpoint(rp: Rp, wallet: Any) -> None:
    """fapi2-security-profile-final-ensure-client-id-in-token-endpoint: client_id and an assertion for client
    B, signed with client A's key: invalid_client (401)."""
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    forged = assertion(rp.key, "other-fapi", now=now_of(rp))
    reply = await rp.h.client.post(
        "/token",
        data={**assertion_fields("other-fapi", forged), **code_form(got)},
        headers=flow.dpop_header("POST", "/token"),
    )
    assert_error(reply, 401, "invalid_client")
    await assert_code_still_redeemable(flow, got)


async def test_code_issued_to_secret_client_redeemed_by_another_secret_client(rp: Rp, wallet: Any) -> None:
    """RFC 6749 4.1.3: ensure the code was issued to the authenticated confidential client."""
    flow = rp.broker()
    got = await authorize(flow, wallet, pushed=False)
    poster = Flow(rp.h.client, ISSUER, "poster", BROKER_CB, auth={"client_secret": POSTER_SECRET})
    assert_error(await redeem(poster, got), 400, "invalid_grant")
    await assert_code_still_redeemable(flow, got)


async def test_redirect_uri_at_token_must_match_the_authorization_request(rp: Rp, wallet: Any) -> None:
    """RFC 6749 4.1.3: the redirect_uri repeated at the token endpoint must be identical."""
    flow = rp.broker()
    got = await authorize(flow, wallet, pushed=False)
    assert_error(await redeem(flow, got, redirect_uri=BROKER_CB + "/"), 400, "invalid_grant")
    assert_error(await redeem(flow, got, redirect_uri=""), 400, "invalid_grant")
    await assert_code_still_redeemable(flow, got)


# ------------------------------------------------------------------------------- client authentication


@pytest.mark.parametrize(
    "case",
    [
        "alg-none",
        "hs256-public-key-as-secret",
        "rs256",
        "ps256-with-ec-kid",
        "signed-by-another-key",
        "unknown-kid",
        "wrong-aud",
        "token-endpoint-aud",
        "par-endpoint-aud",
        "array-aud",
        "no-sub",
        "sub-mismatch",
        "iss-other-client",
        "exp-5-minutes-in-past",
        "exp-too-far-ahead",
        "nbf-over-60-seconds-in-the-future",
        "no-jti",
        "wrong-assertion-type",
    ],
)
async def test_ensure_invalid_client_assertions_fail(rp: Rp, wallet: Any, case: str) -> None:
    """fapi2-security-profile-final-ensure-invalid-client-assertions-fail and its neighbours
    (ensure-signed-client-assertion-with-RS256-fails, ensure-client-assertion-with-wrong-aud-fails,
    ensure-client-assertion-with-no-sub-fails, ensure-client-assertion-with-exp-is-5-minutes-in-past-fails,
    par-test-token-endpoint-url-as-audience-fails, par-test-par-endpoint-url-as-audience-fails,
    par-test-array-as-audience-fails,
    par-ensure-jwt-client-assertions-nbf-over-60-seconds-in-the-future-fails):
    RFC 7523 section 3 and FAPI 2.0 SP 5.3.2.1, invalid_client (401) at the token endpoint."""
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    now = now_of(rp)
    key, cid = rp.key, "perps-dapp"
    claims = assertion_claims(cid, now=now)
    assertion_type = ASSERTION_TYPE
    if case == "alg-none":
        token = raw_jws({"alg": "none", "kid": key.kid}, claims, lambda _: b"")
    elif case == "hs256-public-key-as-secret":
        token = raw_jws(
            {"alg": "HS256", "kid": key.kid},
            claims,
            lambda m: hmac.new(public_pem(key), m, hashlib.sha256).digest(),
        )
    elif case == "rs256":
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": key.kid})
    elif case == "ps256-with-ec-kid":
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = jwt.encode(claims, rsa_key, algorithm="PS256", headers={"kid": key.kid})
    elif case == "signed-by-another-key":
        intruder = ec.generate_private_key(ec.SECP256R1())
        token = jwt.encode(claims, intruder, algorithm="ES256", headers={"kid": key.kid})
    elif case == "unknown-kid":
        token = assertion(key, cid, now=now, kid="no-such-kid")
    elif case == "wrong-aud":
        token = assertion(key, cid, now=now, aud="https://elsewhere.example")
    elif case == "token-endpoint-aud":
        token = assertion(key, cid, now=now, aud=f"{ISSUER}/token")
    elif case == "par-endpoint-aud":
        token = assertion(key, cid, now=now, aud=f"{ISSUER}/par")
    elif case == "array-aud":
        token = assertion(key, cid, now=now, aud=[ISSUER])
    elif case == "no-sub":
        token = assertion(key, cid, now=now, sub=None)
    elif case == "sub-mismatch":
        token = assertion(key, cid, now=now, sub="other-fapi")
    elif case == "iss-other-client":
        # iss names client B while the key, kid and sub are client A's; the body names no client_id
        token = assertion(key, cid, now=now, iss="other-fapi")
        cid = ""
    elif case == "exp-5-minutes-in-past":
        token = assertion(key, cid, now=now, iat=now - 360, exp=now - 300)
    elif case == "exp-too-far-ahead":
        token = assertion(key, cid, now=now, exp=now + 3600)
    elif case == "nbf-over-60-seconds-in-the-future":
        token = assertion(key, cid, now=now, nbf=now + 70, exp=now + 120)
    elif case == "no-jti":
        token = assertion(key, cid, now=now, jti=None)
    else:
        token = assertion(key, cid, now=now)
        assertion_type = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    fields = {**assertion_fields(cid or None, token), "client_assertion_type": assertion_type}
    reply = await rp.h.client.post(
        "/token", data={**fields, **code_form(got)}, headers=flow.dpop_header("POST", "/token")
    )
    assert_error(reply, 401, "invalid_client")
    await assert_code_still_redeemable(flow, got)


async def test_ensure_client_assertion_with_reused_jti_fails(rp: Rp, wallet: Any) -> None:
    """RFC 7523 3 item 7: a jti is accepted once; the replayed assertion is invalid_client."""
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    token = assertion(rp.key, "perps-dapp", now=now_of(rp))
    # the captured assertion was used once, by its client, for something harmless (a refused code)
    first = await rp.h.client.post(
        "/token",
        data={**assertion_fields("perps-dapp", token), **code_form(got, code="not-a-code")},
        headers=flow.dpop_header("POST", "/token"),
    )
    assert_error(first, 400, "invalid_grant")
    replay = await rp.h.client.post(
        "/token",
        data={**assertion_fields("perps-dapp", token), **code_form(got)},
        headers=flow.dpop_header("POST", "/token"),
    )
    assert_error(replay, 401, "invalid_client")
    await assert_code_still_redeemable(flow, got)


async def test_client_assertion_iss_differs_from_body_client_id(rp: Rp, wallet: Any) -> None:
    """RFC 7521 4.2: a client_id parameter must name the client the assertion identifies. Refused before the
    signature is even looked at (invalid_request, as for any contradictory credentials)."""
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    token = assertion(rp.key, "perps-dapp", now=now_of(rp), iss="other-fapi")
    reply = await rp.h.client.post(
        "/token",
        data={**assertion_fields("perps-dapp", token), **code_form(got)},
        headers=flow.dpop_header("POST", "/token"),
    )
    assert_error(reply, 400, "invalid_request")
    await assert_code_still_redeemable(flow, got)


@pytest.mark.parametrize(
    "case", ["wrong-secret", "unknown-client", "two-methods", "post-for-basic-client", "no-authentication"]
)
async def test_client_secret_authentication_failures(rp: Rp, wallet: Any, case: str) -> None:
    """RFC 6749 2.3 and 5.2: invalid_client (401, with a Basic challenge after a Basic attempt); two methods
    at once is invalid_request (section 2.3: a client MUST NOT use more than one)."""
    flow = rp.broker()
    got = await authorize(flow, wallet, pushed=False)
    form = code_form(got, BROKER_CB)
    status, error = 401, "invalid_client"
    headers: dict[str, str] = {}
    if case == "wrong-secret":
        headers = basic("broker", "not-the-secret-" + "x" * 32)
    elif case == "unknown-client":
        headers = basic("nobody", SECRET)
    elif case == "two-methods":
        headers = basic("broker", SECRET)
        form |= {"client_id": "broker", "client_secret": SECRET}
        status, error = 400, "invalid_request"
    elif case == "post-for-basic-client":
        form |= {"client_id": "broker", "client_secret": SECRET}
    else:
        form |= {"client_id": "broker"}
    reply = await rp.h.client.post("/token", data=form, headers=headers)
    assert_error(reply, status, error)
    if case in ("wrong-secret", "unknown-client"):
        assert reply.headers["www-authenticate"].startswith("Basic")
    await assert_code_still_redeemable(flow, got)


# ----------------------------------------------------------------------------------------------- DPoP


def _bad_proof(case: str, key: Key, now: int) -> tuple[str, str]:
    """A DPoP proof for POST /token that is wrong in one way, and the word the error description names."""
    htu = f"{ISSUER}/token"
    claims = {"jti": secrets.token_urlsafe(16), "htm": "POST", "htu": htu, "iat": now}
    header = {"typ": "dpop+jwt", "jwk": key.jwk}
    es256 = {"alg": "ES256", **header}
    if case == "wrong-htu":
        return dpop_proof(key, "POST", f"{ISSUER}/par", iat=now), "htu"
    if case == "htu-with-other-host":
        return dpop_proof(key, "POST", "https://evil.example/token", iat=now), "htu"
    if case == "wrong-htm":
        return dpop_proof(key, "GET", htu, iat=now), "htm"
    if case == "stale-iat":
        return dpop_proof(key, "POST", htu, iat=now - 300), "iat"
    if case == "future-iat":
        return dpop_proof(key, "POST", htu, iat=now + 300), "iat"
    if case == "alg-none":
        return raw_jws({"alg": "none", **header}, claims, lambda _: b""), "compact JWS"
    if case == "hs256":
        secret = json.dumps(key.jwk).encode()
        return raw_jws(
            {"alg": "HS256", **header}, claims, lambda m: hmac.new(secret, m, hashlib.sha256).digest()
        ), "alg"
    if case == "private-key-in-jwk":
        d = key.private.private_numbers().private_value.to_bytes(32, "big")
        jwk = {**key.jwk, "d": b64url(d)}
        return jwt.encode(
            claims, key.private, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": jwk}
        ), "private"
    if case == "signed-by-another-key":
        return jwt.encode(claims, Key().private, algorithm="ES256", headers=header), "signature"
    if case == "wrong-typ":
        return jwt.encode(claims, key.private, algorithm="ES256", headers={**header, "typ": "JWT"}), "typ"
    if case == "no-jti":
        return jwt.encode({**claims, "jti": None}, key.private, algorithm="ES256", headers=header), "jti"
    assert case == "no-jwk"
    return raw_jws({"typ": "dpop+jwt", **es256, "jwk": None}, claims, lambda _: b"sig"), "jwk"


DPOP_CASES = [
    "wrong-htu",
    "htu-with-other-host",
    "wrong-htm",
    "stale-iat",
    "future-iat",
    "alg-none",
    "hs256",
    "private-key-in-jwk",
    "signed-by-another-key",
    "wrong-typ",
    "no-jti",
    "no-jwk",
]


@pytest.mark.parametrize("case", DPOP_CASES)
async def test_dpop_negative_tests_at_token_endpoint(rp: Rp, wallet: Any, case: str) -> None:
    """fapi2-security-profile-final-dpop-negative-tests: RFC 9449 section 4.3 checks at the token endpoint
    give invalid_dpop_proof (400) and spend nothing."""
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    assert flow.dpop is not None
    proof, word = _bad_proof(case, flow.dpop, now_of(rp))
    reply = await rp.h.client.post(
        "/token", data={**flow.client_auth(), **code_form(got)}, headers={"DPoP": proof}
    )
    body = assert_error(reply, 400, "invalid_dpop_proof")
    assert word in body["error_description"], body
    await assert_code_still_redeemable(flow, got)


async def test_dpop_replayed_proof_at_token_endpoint(rp: Rp, wallet: Any) -> None:
    """fapi2-security-profile-final-dpop-negative-tests (jti replay, RFC 9449 section 11.1)."""
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    captured = flow.dpop_header("POST", "/token")
    used = await rp.h.client.post(
        "/token", data={**flow.client_auth(), **code_form(got, code="not-a-code")}, headers=captured
    )
    assert_error(used, 400, "invalid_grant")
    replay = await rp.h.client.post("/token", data={**flow.client_auth(), **code_form(got)}, headers=captured)
    body = assert_error(replay, 400, "invalid_dpop_proof")
    assert "already used" in body["error_description"]
    await assert_code_still_redeemable(flow, got)


async def test_ensure_holder_of_key_required(rp: Rp, wallet: Any) -> None:
    """fapi2-security-profile-final-ensure-holder-of-key-required: no proof, no (bearer) token."""
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    assert_error(await flow.token(code_form(got), dpop=False), 400, "invalid_dpop_proof")
    await assert_code_still_redeemable(flow, got)


async def test_ensure_token_endpoint_fails_with_mismatched_dpop_proof_jkt(rp: Rp, wallet: Any) -> None:
    """fapi2-security-profile-final-ensure-token-endpoint-fails-with-mismatched-dpop-proof-jkt: the code was
    bound at PAR to the key of the PAR request's proof (RFC 9449 section 10); another key cannot redeem it."""
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    other_key = rp.fapi(dpop=Key())
    assert_error(await redeem(other_key, got), 400, "invalid_grant")
    await assert_code_still_redeemable(flow, got)


async def test_ensure_token_endpoint_fails_with_mismatched_dpop_jkt(rp: Rp, wallet: Any) -> None:
    """fapi2-security-profile-final-ensure-token-endpoint-fails-with-mismatched-dpop-jkt: the dpop_jkt
    parameter (no proof at PAR) binds the code; a proof by another key is refused."""
    bound = Key()
    flow = rp.fapi(dpop=None)
    got = await authorize(flow, wallet, dpop_jkt=bound.thumbprint)
    assert_error(await redeem(rp.fapi(dpop=Key()), got), 400, "invalid_grant")
    await assert_code_still_redeemable(rp.fapi(dpop=bound), got)


async def test_ensure_mismatched_dpop_jkt_fails(rp: Rp) -> None:
    """fapi2-security-profile-final-ensure-mismatched-dpop-jkt-fails: dpop_jkt at PAR that is not the key of
    the PAR request's own proof (RFC 9449 section 10.1)."""
    flow = rp.fapi()
    params = authorization_params("perps-dapp", CB, dpop_jkt=Key().thumbprint)
    assert_not_pushed(await flow.push(**params), 400, "invalid_request")


async def _dpop_tokens(rp: Rp, wallet: Any) -> tuple[ClockFlow, dict[str, Any]]:
    flow = rp.fapi()
    got = await authorize(flow, wallet)
    return flow, await assert_code_still_redeemable(flow, got)


@pytest.mark.parametrize(
    "case", ["missing-ath", "ath-of-another-token", "replayed-proof", "another-key", "no-proof", "wrong-htu"]
)
async def test_dpop_negative_tests_at_userinfo(rp: Rp, wallet: Any, case: str) -> None:
    """fapi2-security-profile-final-dpop-negative-tests at the resource (RFC 9449 section 7): 401 with a
    ``WWW-Authenticate: DPoP`` challenge, and no claims."""
    flow, tokens = await _dpop_tokens(rp, wallet)
    assert flow.dpop is not None
    at = tokens["access_token"]
    now = now_of(rp)
    url = f"{ISSUER}/userinfo"
    error = "invalid_dpop_proof"
    if case == "missing-ath":
        proof = dpop_proof(flow.dpop, "GET", url, iat=now)
    elif case == "ath-of-another-token":
        proof = dpop_proof(flow.dpop, "GET", url, access_token=at + "x", iat=now)
    elif case == "replayed-proof":
        proof = dpop_proof(flow.dpop, "GET", url, access_token=at, iat=now)
        ok = await rp.h.client.get("/userinfo", headers={"Authorization": f"DPoP {at}", "DPoP": proof})
        assert ok.status_code == 200, ok.text
    elif case == "another-key":
        proof = dpop_proof(Key(), "GET", url, access_token=at, iat=now)
    elif case == "wrong-htu":
        proof = dpop_proof(flow.dpop, "GET", f"{ISSUER}/token", access_token=at, iat=now)
    else:
        proof = ""
    headers = {"Authorization": f"DPoP {at}"} | ({"DPoP": proof} if proof else {})
    reply = await rp.h.client.get("/userinfo", headers=headers)
    assert reply.status_code == 401, reply.text
    assert reply.json()["error"] == error and "sub" not in reply.json()
    assert reply.headers["www-authenticate"].startswith(f'DPoP error="{error}"')


async def test_access_token_type_dpop_bound_token_as_bearer(rp: Rp, wallet: Any) -> None:
    """RFC 9449 section 7.2: a DPoP-bound token presented as a Bearer token is refused."""
    _, tokens = await _dpop_tokens(rp, wallet)
    reply = await rp.h.client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert reply.status_code == 401 and reply.json()["error"] == "invalid_token"
    assert "sub" not in reply.json()


# ------------------------------------------------------------------------------------ refresh rotation


async def test_refresh_token_reuse_revokes_the_family(rp_any_db: Rp, wallet: Any) -> None:
    """fapi2-security-profile-final-refresh-token (rotation): a rotated refresh token presented again once
    its successor was used has leaked; the whole family ends (RFC 9700 4.14.2), including the successor and
    its access token. (Presented before the successor is used, within the window, it is the retry FAPI 2.0
    5.3.2.1 (10) allows: tests/http/test_fapi2_refresh_retry.py.)"""
    rp = rp_any_db
    flow, first = await _dpop_tokens(rp, wallet)
    rotated = await flow.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert (await introspect(flow, second["access_token"]))["active"] is True
    used = await flow.token({"grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
    assert used.status_code == 200, used.text
    third = used.json()
    reuse = await flow.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert_error(reuse, 400, "invalid_grant")
    successor = await flow.token({"grant_type": "refresh_token", "refresh_token": third["refresh_token"]})
    assert_error(successor, 400, "invalid_grant")
    for token in (
        third["access_token"],
        third["refresh_token"],
        second["access_token"],
        first["access_token"],
    ):
        assert await introspect(flow, token) == {"active": False}


async def test_concurrent_refresh_rotates_once(rp_any_db: Rp, wallet: Any) -> None:
    """Rotation is one atomic step: of two simultaneous refreshes with the same token, exactly one returned
    pair ends up the family's current one. The second to reach the database is a retry of a fresh rotation
    (FAPI 2.0 5.3.2.1 (10)): it wins and revokes the first's successor, or, racing it inside PostgreSQL,
    is refused without ending the family."""
    rp = rp_any_db
    flow, tokens = await _dpop_tokens(rp, wallet)
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    replies = await asyncio.gather(flow.token(form), flow.token(form))
    ok = [r for r in replies if r.status_code == 200]
    assert ok, [r.text for r in replies]
    for reply in replies:
        if reply.status_code != 200:
            assert_error(reply, 400, "invalid_grant")
    successors = [{"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]} for r in ok]
    outcomes = [(await flow.token(successor)).status_code for successor in successors]
    assert outcomes.count(200) == 1, outcomes


async def test_refresh_token_bound_to_client(rp: Rp, wallet: Any) -> None:
    """RFC 6749 section 6: the refresh token was issued to another client."""
    flow, tokens = await _dpop_tokens(rp, wallet)
    stolen = await rp.other().token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert_error(stolen, 400, "invalid_grant")
    again = await flow.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert again.status_code == 200, again.text


# ------------------------------------------------------------------------- the hosted page's two steps


async def _opened(rp: Rp, http: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    """A plain (broker) authorization request opened in ``http``: the page's view and its browser cookie."""
    reply = await http.get("/authorize", params=authorization_params("broker", BROKER_CB))
    assert reply.status_code == 200, reply.text[:300]
    view = page_view(reply)
    cookie = reply.cookies.get(COOKIE)
    assert cookie
    return view, cookie


async def _finish(http: httpx.AsyncClient, view: dict[str, Any], wallet: Any) -> dict[str, str]:
    signed = await wallet_signs(http, view, wallet)
    assert signed.status_code == 200, signed.text
    decided = await http.post(
        view["endpoints"]["consent"], json={"approve": True}, headers=page_headers(view)
    )
    assert decided.status_code == 200, decided.text
    return redirect_params(decided.json()["redirect_to"])


def _no_code(reply: httpx.Response, status: int, error: str) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["error"] == error, body
    assert "redirect_to" not in body and "consent" not in body


@pytest.mark.parametrize("cookie", ["none", "another-browsers"])
async def test_interaction_requires_the_browser_that_opened_it(rp: Rp, wallet: Any, cookie: str) -> None:
    """The page's calls are bound to the browser that opened it (a phished link opened elsewhere fails):
    sign-in and consent from another user agent are refused, and the victim's sign-in goes on. Without a
    cookie the browser binding refuses (invalid_request); with another browser's cookie, the CSRF token
    bound to that cookie already does (access_denied, app/http/csrf.py), whichever page's token it sends."""
    victim_view, _ = await _opened(rp, rp.h.client)
    expected = (400, "invalid_request") if cookie == "none" else (403, "access_denied")
    async with browser(rp.h) as attacker:
        headers: dict[str, str] = {}
        if cookie == "another-browsers":
            own_view, own = await _opened(rp, attacker)  # its jar's cookie is scoped to its own interaction
            headers = {"Cookie": f"{COOKIE}={own}", **page_headers(own_view)}
        message = siwe_message(victim_view, wallet.address)
        signin = await attacker.post(
            victim_view["endpoints"]["signin"],
            json={"message": message, "signature": sign(wallet, message)},
            headers=headers,
        )
        _no_code(signin, *expected)
        consent = await attacker.post(
            victim_view["endpoints"]["consent"], json={"approve": True}, headers=headers
        )
        _no_code(consent, *expected)
    params = await _finish(rp.h.client, victim_view, wallet)
    assert params["code"] and params["iss"] == ISSUER


async def test_interaction_consent_after_sign_in_from_another_browser(rp: Rp, wallet: Any) -> None:
    """Consent is bound to the browser too, after the wallet signed in: no code for another user agent."""
    view, _ = await _opened(rp, rp.h.client)
    signed = await wallet_signs(rp.h.client, view, wallet)
    assert signed.status_code == 200, signed.text
    async with browser(rp.h) as attacker:
        own_view, own = await _opened(rp, attacker)
        stolen = await attacker.post(
            view["endpoints"]["consent"],
            json={"approve": True},
            headers={"Cookie": f"{COOKIE}={own}", **page_headers(own_view)},
        )
    _no_code(stolen, 403, "access_denied")  # the CSRF token is bound to the cookie (app/http/csrf.py)
    decided = await rp.h.client.post(
        view["endpoints"]["consent"], json={"approve": True}, headers=page_headers(view)
    )
    assert decided.status_code == 200 and redirect_params(decided.json()["redirect_to"])["code"]


async def test_consent_before_sign_in(rp: Rp, wallet: Any) -> None:
    """Consent needs a wallet sign-in first: invalid_request, and no code."""
    view, _ = await _opened(rp, rp.h.client)
    early = await rp.h.client.post(
        view["endpoints"]["consent"], json={"approve": True}, headers=page_headers(view)
    )
    _no_code(early, 400, "invalid_request")
    assert "sign in" in early.json()["error_description"]
    params = await _finish(rp.h.client, view, wallet)  # the interaction was not spent
    assert params["code"]


async def test_siwe_message_with_another_interactions_nonce(rp: Rp, wallet: Any) -> None:
    """EIP-4361 nonce binding: a message carrying another interaction's (valid, unused) nonce is refused with
    nonce_mismatch (401); neither interaction is spent and no code is issued."""
    view, _ = await _opened(rp, rp.h.client)
    async with browser(rp.h) as other:
        other_view, _ = await _opened(rp, other)
        crossed = {**view, "siwe": {**view["siwe"], "nonce": other_view["siwe"]["nonce"]}}
        message = siwe_message(crossed, wallet.address)
        reply = await rp.h.client.post(
            view["endpoints"]["signin"],
            json={"message": message, "signature": sign(wallet, message)},
            headers=page_headers(view),
        )
        _no_code(reply, 401, "nonce_mismatch")
        not_signed_in = await rp.h.client.post(
            view["endpoints"]["consent"], json={"approve": True}, headers=page_headers(view)
        )
        _no_code(not_signed_in, 400, "invalid_request")
        assert (await _finish(other, other_view, wallet))["code"]
    assert (await _finish(rp.h.client, view, wallet))["code"]


async def test_interaction_signin_twice(rp: Rp, wallet: Any) -> None:
    """The wallet step is single-use: a second signature on the same interaction is refused."""
    view, _ = await _opened(rp, rp.h.client)
    first = await wallet_signs(rp.h.client, view, wallet)
    assert first.status_code == 200, first.text
    second = await wallet_signs(rp.h.client, view, wallet)
    _no_code(second, 400, "invalid_request")


async def test_interaction_consent_twice(rp: Rp, wallet: Any) -> None:
    """One interaction, one code: a second consent (say, a replayed request) is refused."""
    view, _ = await _opened(rp, rp.h.client)
    assert (await _finish(rp.h.client, view, wallet))["code"]
    again = await rp.h.client.post(
        view["endpoints"]["consent"], json={"approve": True}, headers=page_headers(view)
    )
    _no_code(again, 400, "invalid_request")
