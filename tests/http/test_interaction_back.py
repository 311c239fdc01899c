"""The hosted page's "Back to <client>" (POST /authorize/interactions/{id}/back): before or after a sign-in
attempt, even past the interaction's expiry, it ends the interaction once and sends the client
error=access_denied with its state and iss (RFC 6749 4.1.2.1, RFC 9207); the audit trail says so, with the
failure the page showed. A refused sign-in's answer carries the failure in words (``page``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.audit.tamper import rows
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign
from tests.flow.client import page_headers, page_view, pkce_pair, siwe_message, write_clients

CB = "https://spa.example/cb?keep=1"


@pytest.fixture
async def h(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    clients = write_clients(
        tmp_path / "clients.json",
        [
            {
                "client_id": "spa",
                "client_name": "Spa dApp",
                "redirect_uris": [CB],
                "token_endpoint_auth_method": "none",
            }
        ],
    )
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        clients_file=clients,
        operator_name="Example Exchange",
        chain_ids=[31337],
    )
    async with running_app(settings, FakeClock()) as harness:
        yield harness


async def open_page(h: Harness) -> dict[str, Any]:
    _, challenge = pkce_pair()
    query = {
        "response_type": "code",
        "client_id": "spa",
        "redirect_uri": CB,
        "scope": "openid",
        "state": "st-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    page = await h.client.get("/authorize", params=query)
    assert page.status_code == 200, page.text[:300]
    return page_view(page)


async def back(h: Harness, view: dict[str, Any], body: dict[str, Any] | None = None) -> Any:
    return await h.client.post(view["endpoints"]["back"], json=body or {}, headers=page_headers(view))


def assert_access_denied(location: str, issuer: str) -> None:
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://spa.example/cb"
    params = parse_qs(parts.query)
    assert params["keep"] == ["1"] and params["error"] == ["access_denied"]
    assert params["state"] == ["st-1"] and params["iss"] == [issuer]


async def went_back(h: Harness) -> list[dict[str, Any]]:
    entries = await rows(h.app.state.provider.store.engine)
    return [e for e in entries if e["type"] == "authorization.denied" and e["reason"] == "user_went_back"]


async def test_the_view_names_operator_client_domain_and_chains(h: Harness) -> None:
    view = await open_page(h)
    assert view["operator"] == "Example Exchange"
    assert view["client"]["domain"] == "spa.example"
    assert view["chain_names"]["31337"] == "Portcullis development chain (31337)"
    assert view["texts"]["rejected_signature"]["back"] == "Back to Spa dApp"


async def test_back_before_signing_in_returns_access_denied_once(h: Harness) -> None:
    view = await open_page(h)
    answer = await back(h, view)
    assert answer.status_code == 200, answer.text
    assert_access_denied(answer.json()["redirect_to"], h.settings.issuer)
    (entry,) = await went_back(h)
    assert entry["client_id"] == "spa"
    again = await back(h, view)
    assert again.status_code == 400 and again.json()["error"] == "invalid_request"
    consent = await h.client.post(
        view["endpoints"]["consent"], json={"approve": True}, headers=page_headers(view)
    )
    assert consent.status_code == 400
    assert consent.json()["page"]["failure"] == "expired"  # the page says start again from the app
    assert "Go back to Spa dApp and start again." in consent.json()["page"]["message"]


async def test_back_after_a_refused_sign_in_records_the_failure(h: Harness, wallet: Any) -> None:
    view = await open_page(h)
    message = siwe_message(view, wallet.address, chain_id=1)  # not an allowed chain
    refused = await h.client.post(
        view["endpoints"]["signin"],
        json={"message": message, "signature": sign(wallet, message)},
        headers=page_headers(view),
    )
    assert refused.status_code == 401 and refused.json()["error"] == "chain_not_allowed", refused.text
    page = refused.json()["page"]
    assert page["failure"] == "wrong_chain" and page["back"] == "Back to Spa dApp"
    assert "Switch your wallet to Portcullis development chain (31337)" in page["message"]
    assert page["technical"].startswith("chain_not_allowed: ")
    answer = await back(h, view, {"failure": page["failure"]})
    assert answer.status_code == 200, answer.text
    assert_access_denied(answer.json()["redirect_to"], h.settings.issuer)
    (entry,) = await went_back(h)
    assert json.loads(entry["data"])["page_failure"] == "wrong_chain"


async def test_back_after_signing_in_and_past_expiry(h: Harness, wallet: Any) -> None:
    view = await open_page(h)
    message = siwe_message(view, wallet.address)
    signed = await h.client.post(
        view["endpoints"]["signin"],
        json={"message": message, "signature": sign(wallet, message)},
        headers=page_headers(view),
    )
    assert signed.status_code == 200 and "consent" in signed.json(), signed.text
    h.clock.advance(3600)
    answer = await back(h, view)
    assert answer.status_code == 200, answer.text
    assert_access_denied(answer.json()["redirect_to"], h.settings.issuer)
    (entry,) = await went_back(h)
    assert entry["actor"] and entry["actor"].endswith(wallet.address)


async def test_back_refuses_an_unknown_failure_name(h: Harness) -> None:
    view = await open_page(h)
    answer = await back(h, view, {"failure": "<script>"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
    assert await went_back(h) == []
