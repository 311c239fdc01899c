"""The demo dApp of frontend-demo/ (app/http/demo.py) and its public client ``frontend-demo``
(app.bootstrap.demo_client): served and registered in development, absent in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.bootstrap import DEMO_CLIENT_ID, development_clients
from tests.conftest import FakeClock, make_settings, running_app, sign, siwe_text

ISSUER = "http://127.0.0.1:8000"


async def test_development_serves_the_page_its_config_and_its_scripts(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url, demo_api_url="http://127.0.0.1:8100/")
    async with running_app(settings, FakeClock()) as h:
        page = await h.client.get("/demo/")
        assert page.status_code == 200 and "Portcullis demo dApp" in page.text
        assert 'http-equiv="Content-Security-Policy"' in page.text and "script-src 'self'" in page.text
        config = (await h.client.get("/demo/config.json")).json()
        assert config == {
            "issuer": ISSUER,
            "client_id": DEMO_CLIENT_ID,
            "redirect_uri": f"{ISSUER}/demo/",
            "scopes": ["openid", "compliance", "portfolio:read", "perps:trade", "vault:withdraw"],
            "chain_id": settings.chain_ids[0],
            "chain_rpc_url": None,  # no embedded chain in this configuration
            "api_url": "http://127.0.0.1:8100",
        }
        keccak = await h.client.get("/demo/keccak.js")
        assert keccak.status_code == 200 and keccak.headers["content-type"].startswith("text/javascript")
        assert "toChecksumAddress" in keccak.text
        vendored = await h.client.get("/demo/vendor/oauth4webapi.js")
        assert vendored.status_code == 200 and "const VERSION = 'v3.8.8';" in vendored.text
        assert (await h.client.get("/demo/nothing.js")).status_code == 404


def test_the_demo_client_is_public_pushed_dpop_bound_and_on_its_page(tmp_path: Path) -> None:
    (client,) = development_clients(make_settings(tmp_path))  # no perps-api secret in this data dir
    assert client.client_id == DEMO_CLIENT_ID and client.token_endpoint_auth_method == "none"
    assert client.redirect_uris == (f"{ISSUER}/demo/",) and client.post_logout_redirect_uris == (
        f"{ISSUER}/demo/",
    )
    assert client.siwe_domains == ("127.0.0.1:8000",) and client.allowed_origins == (ISSUER,)
    assert client.dpop_bound_access_tokens and client.require_pushed_authorization_requests


async def test_the_page_signs_in_as_the_demo_client_from_its_origin_only(
    tmp_path: Path, sqlite_url: str, wallet: Any
) -> None:
    async with running_app(make_settings(tmp_path, database_url=sqlite_url), FakeClock()) as h:
        own = {"Origin": ISSUER}
        offer = (await h.client.post("/siwe/nonce", json={"client_id": DEMO_CLIENT_ID}, headers=own)).json()
        assert (offer["scheme"], offer["domain"], offer["uri"]) == ("http", "127.0.0.1:8000", ISSUER)
        text = siwe_text(offer, wallet.address, issued_at=h.clock.now())
        body = {"message": text, "signature": sign(wallet, text), "client_id": DEMO_CLIENT_ID}
        foreign = await h.client.post("/siwe/verify", json=body, headers={"Origin": "http://127.0.0.1:9999"})
        assert foreign.status_code == 403 and foreign.json()["error"] == "access_denied", foreign.text
        signed_in = await h.client.post("/siwe/verify", json=body, headers=own)
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.headers["access-control-allow-origin"] == ISSUER
        # the hosted-page path must be pushed (PAR): a plain authorization request is refused
        plain = await h.client.get(
            "/authorize",
            params={
                "client_id": DEMO_CLIENT_ID,
                "response_type": "code",
                "redirect_uri": f"{ISSUER}/demo/",
                "scope": "openid",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            },
        )
        assert plain.status_code == 303, plain.text
        location = plain.headers["location"]
        assert location.startswith(f"{ISSUER}/demo/?error=invalid_request&") and "must+push" in location


async def test_production_serves_no_demo_and_knows_no_demo_client(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(
        tmp_path,
        database_url=sqlite_url,
        mode="production",
        issuer="https://auth.example.com",
        compliance="off",
    )
    assert development_clients(settings) == []
    async with running_app(settings, FakeClock()) as h:
        for path in ("/demo/", "/demo/config.json", "/demo/keccak.js", "/demo/js/app.js"):
            assert (await h.client.get(path)).status_code == 404, path
        refused = await h.client.post("/siwe/nonce", json={"client_id": DEMO_CLIENT_ID})
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client", refused.text
