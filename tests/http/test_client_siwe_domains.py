"""A registered public client's own dApp domains (docs/CLIENTS.md `siwe_domains`) at /siwe/nonce and
/siwe/verify: the message must name one of them and its URI must be on that origin; a confidential client
cannot use the unauthenticated SIWE endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text
from tests.flow.client import write_clients


@pytest.fixture
async def h(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Harness]:
    clients = write_clients(
        tmp_path / "clients.json",
        [
            {
                "client_id": "perps-web",
                "redirect_uris": ["https://perps.example/cb"],
                "token_endpoint_auth_method": "none",
                "siwe_domains": ["perps.example", "app.perps.example"],
            },
            {
                "client_id": "backend",
                "grant_types": ["client_credentials"],
                "response_types": [],
                "token_endpoint_auth_method": "client_secret_basic",
                "client_secret": "a-long-client-secret-for-the-backend-0123",
            },
        ],
    )
    settings = make_settings(tmp_path, database_url=sqlite_url, clients_file=clients)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


async def verify(h: Harness, wallet: Any, **override: Any) -> Any:
    offer = (await h.client.post("/siwe/nonce", json={"client_id": "perps-web"})).json()
    text = siwe_text(offer, wallet.address, issued_at=h.clock.now(), **override)
    return await h.client.post(
        "/siwe/verify", json={"message": text, "signature": sign(wallet, text), "client_id": "perps-web"}
    )


async def test_nonce_offer_names_the_dapp_origin(h: Harness) -> None:
    offer = (await h.client.post("/siwe/nonce", json={"client_id": "perps-web"})).json()
    assert offer["domain"] == "perps.example" and offer["uri"] == "https://perps.example"
    assert offer["scheme"] == "https"


async def test_sign_in_on_a_registered_domain(h: Harness, wallet: Any) -> None:
    ok = await verify(h, wallet)
    assert ok.status_code == 200, ok.text
    other = await verify(h, wallet, domain="app.perps.example", uri="https://app.perps.example/login")
    assert other.status_code == 200, other.text


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"domain": "evil.example", "uri": "https://evil.example"}, "domain_mismatch"),
        ({"domain": "127.0.0.1:8000", "uri": "http://127.0.0.1:8000"}, "domain_mismatch"),
        ({"uri": "https://evil.example/perps.example"}, "uri_mismatch"),
    ],
)
async def test_sign_in_elsewhere_is_refused(
    h: Harness, wallet: Any, override: dict[str, str], error: str
) -> None:
    refused = await verify(h, wallet, **override)
    assert refused.status_code == 401 and refused.json()["error"] == error
    assert "access_token" not in refused.json()


async def test_confidential_client_cannot_use_the_siwe_endpoints(h: Harness) -> None:
    refused = await h.client.post("/siwe/nonce", json={"client_id": "backend"})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
