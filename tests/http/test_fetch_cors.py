"""Fetch Standard 3.2 CORS and the Origin check (app/http/cors.py, Provider.origin_allowed, docs/CLIENTS.md):
discovery and JWKS from any origin; the token, userinfo, revocation, introspection and SIWE endpoints
only from the origins of the client the request is for; a browser request from a foreign origin is
refused even with a validly signed message. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text
from tests.flow.client import write_clients

ISSUER = "http://127.0.0.1:8000"
DAPP = "https://dapp.example"  # the spa client's siwe_domains origin
SPA = "https://spa.example"  # the spa client's redirect URI origin
EVIL = "https://evil.example"
IAT = "an-initial-access-token-for-the-cors-tests-0123"


@pytest.fixture
async def h(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    clients = write_clients(
        tmp_path / "clients.json",
        [
            {
                "client_id": "spa",
                "redirect_uris": [f"{SPA}/cb"],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
                "siwe_domains": ["dapp.example"],
            },
            {
                # allowed_origins replaces what the redirect URI would give
                "client_id": "explicit",
                "redirect_uris": ["https://redirect.example/cb"],
                "token_endpoint_auth_method": "none",
                "allowed_origins": ["https://only.example"],
            },
        ],
    )
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        clients_file=clients,
        registration_enabled=True,
        registration_initial_access_token=IAT,
    )
    async with running_app(settings, FakeClock()) as harness:
        yield harness


def preflight(h: Harness, path: str, origin: str, method: str = "POST", headers: str = "") -> Any:
    ask = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        ask["Access-Control-Request-Headers"] = headers
    return h.client.options(path, headers=ask)


def no_credentials(reply: httpx.Response) -> None:
    assert "access-control-allow-credentials" not in reply.headers


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/jwks"])
async def test_discovery_and_jwks_are_readable_from_any_origin(h: Harness, path: str) -> None:
    reply = await h.client.get(path, headers={"Origin": "https://anything.example"})
    assert reply.status_code == 200 and reply.headers["access-control-allow-origin"] == "*"
    no_credentials(reply)
    asked = await preflight(h, path, "https://anything.example", "GET")
    assert asked.status_code == 204 and asked.headers["access-control-allow-origin"] == "*"


async def test_token_preflight_from_a_registered_origin(h: Harness) -> None:
    reply = await preflight(h, "/token", SPA, headers="DPoP, Content-Type, Authorization")
    assert reply.status_code == 204, reply.text
    assert reply.headers["access-control-allow-origin"] == SPA
    assert "POST" in reply.headers["access-control-allow-methods"]
    allowed = {v.strip() for v in reply.headers["access-control-allow-headers"].split(",")}
    assert {"dpop", "content-type", "authorization"} <= allowed
    assert "origin" in reply.headers["vary"].lower()
    no_credentials(reply)


@pytest.mark.parametrize(
    ("path", "origin", "method"),
    [
        ("/userinfo", DAPP, "GET"),
        ("/revoke", SPA, "POST"),
        ("/introspect", SPA, "POST"),
        ("/siwe/nonce", DAPP, "POST"),
        ("/siwe/verify", DAPP, "POST"),
        ("/token", "https://only.example", "POST"),
        ("/siwe/nonce", ISSUER, "POST"),  # the server's own page, for the PORTCULLIS_CLIENTS clients
    ],
)
async def test_preflight_per_client_endpoints(h: Harness, path: str, origin: str, method: str) -> None:
    reply = await preflight(h, path, origin, method, "content-type")
    assert reply.status_code == 204 and reply.headers["access-control-allow-origin"] == origin
    no_credentials(reply)


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        (EVIL, "POST", "content-type"),
        ("https://redirect.example", "POST", ""),  # derived origin, replaced by allowed_origins
        ("null", "POST", ""),
        (SPA, "PUT", ""),
        (SPA, "POST", "x-anything"),
    ],
)
async def test_preflight_refused(h: Harness, origin: str, method: str, headers: str) -> None:
    reply = await preflight(h, "/token", origin, method, headers)
    assert reply.status_code == 403 and reply.json()["error"] == "access_denied"
    assert "access-control-allow-origin" not in reply.headers
    no_credentials(reply)


async def test_a_plain_options_request_is_not_a_preflight(h: Harness) -> None:
    assert (await h.client.options("/token")).status_code == 405


async def nonce(h: Harness, origin: str | None, client_id: str | None = "spa") -> httpx.Response:
    headers = {"Origin": origin} if origin else {}
    body = {"client_id": client_id} if client_id else {}
    return await h.client.post("/siwe/nonce", json=body, headers=headers)


async def test_siwe_nonce_per_client_origin(h: Harness) -> None:
    ok = await nonce(h, DAPP)
    assert ok.status_code == 201 and ok.headers["access-control-allow-origin"] == DAPP
    assert "DPoP-Nonce" in ok.headers["access-control-expose-headers"]
    assert "WWW-Authenticate" in ok.headers["access-control-expose-headers"]
    no_credentials(ok)
    refused = await nonce(h, EVIL)
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied"
    assert EVIL in refused.json()["error_description"]
    assert "access-control-allow-origin" not in refused.headers
    # another client's origin is not this client's
    assert (await nonce(h, "https://only.example")).status_code == 403
    # the default client (PORTCULLIS_CLIENTS) signs on the server's own origin only
    assert (await nonce(h, ISSUER, client_id=None)).status_code == 201
    assert (await nonce(h, DAPP, client_id=None)).status_code == 403
    # no Origin: a backend or the CLI, not a browser page
    plain = await nonce(h, None)
    assert plain.status_code == 201 and "access-control-allow-origin" not in plain.headers


async def verify(h: Harness, wallet: Any, origin: str | None) -> httpx.Response:
    offer = (await nonce(h, None)).json()
    text = siwe_text(offer, wallet.address, issued_at=h.clock.now())
    body = {"message": text, "signature": sign(wallet, text), "client_id": "spa"}
    return await h.client.post("/siwe/verify", json=body, headers={"Origin": origin} if origin else {})


async def test_signed_message_from_a_foreign_origin_is_refused(h: Harness, wallet: Any) -> None:
    refused = await verify(h, wallet, EVIL)
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied"
    assert "access_token" not in refused.json() and "access-control-allow-origin" not in refused.headers
    failures = [e async for e in h.app.state.provider.audit_log.entries() if e["type"] == "signin.failed"]
    assert [(e["reason"], e["client_id"]) for e in failures] == [("access_denied", "spa")]
    assert EVIL in failures[0]["data"]["detail"]


async def test_sign_in_from_the_dapp_origin_then_token_and_userinfo(h: Harness, wallet: Any) -> None:
    signed = await verify(h, wallet, DAPP)
    assert signed.status_code == 200, signed.text
    assert signed.headers["access-control-allow-origin"] == DAPP
    no_credentials(signed)
    tokens = signed.json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    info = await h.client.get("/userinfo", headers={**bearer, "Origin": DAPP})
    assert info.status_code == 200 and info.headers["access-control-allow-origin"] == DAPP
    assert (await h.client.get("/userinfo", headers={**bearer, "Origin": EVIL})).status_code == 403
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "spa"}
    foreign = await h.client.post("/token", data=refresh, headers={"Origin": "https://only.example"})
    assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers
    rotated = await h.client.post("/token", data=refresh, headers={"Origin": SPA})
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["access-control-allow-origin"] == SPA
    no_credentials(rotated)
    revoke = {"token": rotated.json()["refresh_token"], "client_id": "spa"}
    revoked = await h.client.post("/revoke", data=revoke, headers={"Origin": SPA})
    assert revoked.status_code == 200 and revoked.headers["access-control-allow-origin"] == SPA


async def test_an_error_is_readable_by_the_clients_own_page(h: Harness) -> None:
    bad = {"grant_type": "refresh_token", "refresh_token": "nope", "client_id": "spa"}
    reply = await h.client.post("/token", data=bad, headers={"Origin": SPA})
    assert reply.status_code == 400 and reply.headers["access-control-allow-origin"] == SPA


async def test_dynamic_client_registers_allowed_origins(h: Harness) -> None:
    auth = {"Authorization": f"Bearer {IAT}"}
    meta = {
        "redirect_uris": ["https://app.registered.example/cb"],
        "token_endpoint_auth_method": "none",
        "allowed_origins": ["https://web.registered.example"],
    }
    made = await h.client.post("/register", json=meta, headers=auth)
    assert made.status_code == 201, made.text
    assert made.json()["allowed_origins"] == ["https://web.registered.example"]
    reply = await preflight(h, "/token", "https://web.registered.example")
    assert reply.status_code == 204 and reply.headers["access-control-allow-origin"] == (
        "https://web.registered.example"
    )
    bad = await h.client.post(
        "/register", json={**meta, "allowed_origins": ["https://web.registered.example/path"]}, headers=auth
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client_metadata"
