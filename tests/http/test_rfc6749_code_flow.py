"""The authorization-code flow end to end in-process (RFC 6749 4.1, RFC 9126 PAR, RFC 7636 PKCE, RFC 9449
DPoP, RFC 9207 iss, OIDC Core): a FAPI 2.0 client, a secret client, a public client and a service client,
on SQLite and PostgreSQL. The wallet side makes the hosted page's calls by script; tests/integration drives
the real page in a real browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.conftest import FakeClock, Harness, make_settings, running_app
from tests.flow.client import (
    Flow,
    Key,
    authorize,
    b64url,
    fapi_client,
    page_view,
    secret_client,
    service_client,
    write_clients,
)

ISSUER = "http://127.0.0.1:8000"
CB = "https://dapp.example/cb"
SECRET = "a-long-client-secret-for-the-broker-0123456789"


@pytest.fixture
def rp_key() -> Key:
    return Key()


@pytest.fixture
async def h(tmp_path: Path, database_url: str, rp_key: Key) -> AsyncIterator[Harness]:
    clients = write_clients(
        tmp_path / "clients.json",
        [
            fapi_client("perps-dapp", rp_key, CB, scope="openid profile portfolio:read"),
            secret_client("broker", SECRET, [CB, "https://broker.example/cb?tenant=1"]),
            {
                "client_id": "mobile",
                "redirect_uris": ["http://127.0.0.1:7777/cb"],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
            },
            service_client("risk-engine", rp_key, "service:positions:read"),
        ],
    )
    settings = make_settings(tmp_path, database_url=database_url, clients_file=clients)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


def fapi(h: Harness, rp_key: Key) -> Flow:
    return Flow(h.client, ISSUER, "perps-dapp", CB, key=rp_key, dpop=Key())


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def test_fapi_client_par_pkce_dpop_private_key_jwt(h: Harness, rp_key: Key, wallet: Any) -> None:
    flow = fapi(h, rp_key)
    # portfolio:read needs a registry record (policy/default.toml); with no chain configured here the
    # policy narrows the grant to openid, and the consent screen and token say so.
    got = await authorize(flow, wallet, scope="openid portfolio:read")
    assert got.params["iss"] == ISSUER and got.params["state"] == got.state  # RFC 9207
    reply = await flow.token(
        {
            "grant_type": "authorization_code",
            "code": got.code,
            "code_verifier": got.verifier,
            "redirect_uri": CB,
        }
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    tokens = reply.json()
    assert tokens["token_type"] == "DPoP" and tokens["scope"] == "openid"
    access = claims_of(tokens["access_token"])
    assert flow.dpop is not None
    assert access["cnf"] == {"jkt": flow.dpop.thumbprint}
    assert access["sub"] == f"did:pkh:eip155:1:{wallet.address}" and access["client_id"] == "perps-dapp"
    id_token = claims_of(tokens["id_token"])
    assert (
        id_token["nonce"] == got.nonce
        and id_token["aud"] == "perps-dapp"
        and id_token["sid"] == access["sid"]
    )

    # userinfo: DPoP scheme with a proof carrying ath; the bound token is refused as a Bearer token
    at = tokens["access_token"]
    ok = await h.client.get(
        "/userinfo",
        headers={"Authorization": f"DPoP {at}", **flow.dpop_header("GET", "/userinfo", access_token=at)},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["sub"] == access["sub"]
    bearer = await h.client.get("/userinfo", headers={"Authorization": f"Bearer {at}"})
    assert bearer.status_code == 401 and bearer.json()["error"] == "invalid_token"

    # refresh with the same DPoP key: rotated, still bound
    refreshed = await flow.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["token_type"] == "DPoP"
    assert claims_of(refreshed.json()["access_token"])["cnf"] == {"jkt": flow.dpop.thumbprint}
    assert refreshed.json()["refresh_token"] != tokens["refresh_token"]

    # the FAPI client gets no bearer tokens: a refresh without a proof is refused
    no_proof = await flow.token(
        {"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"]}, dpop=False
    )
    assert no_proof.status_code == 400 and no_proof.json()["error"] == "invalid_dpop_proof"


async def test_code_reuse_revokes_what_the_first_use_issued(h: Harness, rp_key: Key, wallet: Any) -> None:
    flow = fapi(h, rp_key)
    got = await authorize(flow, wallet)
    form = {
        "grant_type": "authorization_code",
        "code": got.code,
        "code_verifier": got.verifier,
        "redirect_uri": CB,
    }
    first = await flow.token(form)
    assert first.status_code == 200, first.text
    second = await flow.token(form)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert "access_token" not in second.json()
    again = await flow.token({"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_denied_consent_redirects_access_denied_with_state_and_iss(
    h: Harness, rp_key: Key, wallet: Any
) -> None:
    got = await authorize(fapi(h, rp_key), wallet, approve=False)
    assert got.code == ""
    assert got.params["error"] == "access_denied" and got.params["state"] == got.state
    assert got.params["iss"] == ISSUER


async def test_secret_client_plain_request_keeps_redirect_query(h: Harness, wallet: Any) -> None:
    import base64

    basic = base64.b64encode(f"broker:{SECRET}".encode()).decode()
    flow = Flow(
        h.client,
        ISSUER,
        "broker",
        "https://broker.example/cb?tenant=1",
        auth_headers={"Authorization": f"Basic {basic}"},
    )
    flow.client_auth = lambda: {}  # type: ignore[method-assign]  (client_secret_basic: the header only)
    got = await authorize(flow, wallet, pushed=False)
    assert got.params["tenant"] == "1" and got.code
    reply = await flow.token(
        {
            "grant_type": "authorization_code",
            "code": got.code,
            "code_verifier": got.verifier,
            "redirect_uri": "https://broker.example/cb?tenant=1",
        }
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["token_type"] == "Bearer" and "cnf" not in claims_of(reply.json()["access_token"])


async def test_public_client_refresh_is_bound_to_its_dpop_key(h: Harness, wallet: Any) -> None:
    flow = Flow(h.client, ISSUER, "mobile", "http://127.0.0.1:7777/cb", dpop=Key())
    got = await authorize(flow, wallet, pushed=False)
    reply = await flow.token(
        {
            "grant_type": "authorization_code",
            "code": got.code,
            "code_verifier": got.verifier,
            "redirect_uri": flow.redirect_uri,
        }
    )
    assert reply.status_code == 200, reply.text
    stolen = Flow(h.client, ISSUER, "mobile", flow.redirect_uri, dpop=Key())
    other_key = await stolen.token(
        {"grant_type": "refresh_token", "refresh_token": reply.json()["refresh_token"]}
    )
    assert other_key.status_code == 400 and other_key.json()["error"] == "invalid_grant"
    own = await flow.token({"grant_type": "refresh_token", "refresh_token": reply.json()["refresh_token"]})
    assert own.status_code == 200, own.text


async def test_client_credentials_service_token(h: Harness, rp_key: Key) -> None:
    flow = Flow(h.client, ISSUER, "risk-engine", "", key=rp_key, dpop=Key())
    reply = await flow.token({"grant_type": "client_credentials"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["token_type"] == "DPoP" and body["scope"] == "service:positions:read"
    assert "refresh_token" not in body and "id_token" not in body
    access = claims_of(body["access_token"])
    assert access["sub"] == "risk-engine" and "wallet_address" not in access
    assert body["expires_in"] <= 900
    refused = await flow.token({"grant_type": "client_credentials", "scope": "perps:trade"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    wrong_grant = await flow.token({"grant_type": "authorization_code", "code": "x"})
    assert wrong_grant.status_code == 400 and wrong_grant.json()["error"] == "unauthorized_client"


async def test_hosted_page_is_locked_down(h: Harness, rp_key: Key) -> None:
    flow = fapi(h, rp_key)
    from tests.flow.client import pkce_pair

    _, challenge = pkce_pair()
    pushed = await flow.push(
        response_type="code",
        client_id="perps-dapp",
        redirect_uri=CB,
        code_challenge=challenge,
        code_challenge_method="S256",
        scope="openid",
    )
    page = await flow.open_page({"client_id": "perps-dapp", "request_uri": pushed.json()["request_uri"]})
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    view = page_view(page)
    assert view["client"]["client_name"] == "Perps dApp"
    cookie = page.headers["set-cookie"]
    assert "httponly" in cookie.lower() and f"/authorize/interactions/{view['interaction']}" in cookie
    assert b64url(b"x")  # helper import used
