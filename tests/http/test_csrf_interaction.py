"""OWASP CSRF defences on the hosted page's calls (app/http/csrf.py): Sec-Fetch-Site, Origin, the JSON
content type and a CSRF token bound to the browser cookie; the cookie itself (RFC 6265bis ``__Host-``,
Secure under https, SameSite, HttpOnly). On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock, Harness, make_settings, running_app, sign
from tests.flow.client import page_headers, page_view, pkce_pair, siwe_message, write_clients

CB = "https://spa.example/cb"


def _clients(tmp_path: Path) -> Path:
    return write_clients(
        tmp_path / "clients.json",
        [{"client_id": "spa", "redirect_uris": [CB], "token_endpoint_auth_method": "none"}],
    )


@pytest.fixture
async def h(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    settings = make_settings(tmp_path, database_url=database_url, clients_file=_clients(tmp_path))
    async with running_app(settings, FakeClock()) as harness:
        yield harness


async def open_page(h: Harness) -> tuple[dict[str, Any], str]:
    _, challenge = pkce_pair()
    query = {
        "response_type": "code",
        "client_id": "spa",
        "redirect_uri": CB,
        "scope": "openid",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    page = await h.client.get("/authorize", params=query)
    assert page.status_code == 200, page.text[:300]
    return page_view(page), page.headers["set-cookie"]


def signed_body(view: dict[str, Any], wallet: Any) -> dict[str, str]:
    message = siwe_message(view, wallet.address)
    return {"message": message, "signature": sign(wallet, message)}


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({"Content-Type": "text/plain"}, 400, "invalid_request"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 400, "invalid_request"),
        ({"Origin": "https://evil.example"}, 403, "access_denied"),
        ({"Origin": "null"}, 403, "access_denied"),
        ({"Origin": "null", "Sec-Fetch-Site": "same-site"}, 403, "access_denied"),
        ({"Sec-Fetch-Site": "cross-site"}, 403, "access_denied"),
        ({"Sec-Fetch-Site": "same-site"}, 403, "access_denied"),
        ({"X-CSRF-Token": ""}, 403, "access_denied"),
        ({"X-CSRF-Token": "A" * 43}, 403, "access_denied"),
    ],
)
async def test_cross_site_interaction_calls_are_refused(
    h: Harness, wallet: Any, headers: dict[str, str], status: int, error: str
) -> None:
    """A page on another site can make the browser send the cookie with a text/plain body; each defence
    refuses it alone, and the refused calls spend nothing: the page's own calls then succeed."""
    view, _ = await open_page(h)
    body = json.dumps(signed_body(view, wallet))
    sent = {"Content-Type": "application/json", **page_headers(view), **headers}
    refused = await h.client.post(view["endpoints"]["signin"], content=body, headers=sent)
    assert refused.status_code == status and refused.json()["error"] == error, refused.text
    assert "consent" not in refused.json()
    consent = await h.client.post(view["endpoints"]["consent"], json={"approve": True}, headers=sent)
    assert consent.status_code == status and "redirect_to" not in consent.json()
    own = {**page_headers(view), "Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}
    signed = await h.client.post(
        view["endpoints"]["signin"],
        content=body,
        headers={"Content-Type": "application/json; charset=utf-8", **own},
    )
    assert signed.status_code == 200 and signed.json()["consent"], signed.text
    decided = await h.client.post(view["endpoints"]["consent"], json={"approve": True}, headers=own)
    assert decided.status_code == 200 and "code=" in decided.json()["redirect_to"]


async def test_a_null_origin_from_the_page_itself(h: Harness, wallet: Any) -> None:
    """Under the page's no-referrer policy a browser may send ``Origin: null`` for its own POST; the
    browser-set Sec-Fetch-Site: same-origin then vouches for it."""
    view, _ = await open_page(h)
    own = {**page_headers(view), "Origin": "null", "Sec-Fetch-Site": "same-origin"}
    signed = await h.client.post(view["endpoints"]["signin"], json=signed_body(view, wallet), headers=own)
    assert signed.status_code == 200, signed.text


async def test_the_token_of_another_page_does_not_fit(h: Harness, wallet: Any) -> None:
    first, _ = await open_page(h)
    second, _ = await open_page(h)
    crossed = await h.client.post(
        first["endpoints"]["signin"], json=signed_body(first, wallet), headers=page_headers(second)
    )
    assert crossed.status_code == 403 and crossed.json()["error"] == "access_denied"


async def test_cookie_under_an_http_issuer(h: Harness) -> None:
    view, cookie = await open_page(h)
    lowered = cookie.lower()
    assert cookie.startswith("portcullis_interaction=") and "httponly" in lowered
    assert "samesite=strict" in lowered and "secure" not in lowered
    assert f"Path=/authorize/interactions/{view['interaction']}" in cookie


async def test_host_prefixed_secure_cookie_under_an_https_issuer(
    tmp_path: Path, sqlite_url: str, wallet: Any
) -> None:
    settings = make_settings(
        tmp_path, database_url=sqlite_url, clients_file=_clients(tmp_path), issuer="https://auth.example"
    )
    async with running_app(settings, FakeClock()) as h:
        view, cookie = await open_page(h)
        name = cookie.split("=", 1)[0]
        assert name.startswith("__Host-portcullis_interaction_"), cookie
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"secure", "httponly", "path=/", "samesite=strict"} <= attributes
        assert not any(a.startswith("domain=") for a in attributes)
        # two sign-ins in one browser keep their own cookies
        _, other = await open_page(h)
        assert other.split("=", 1)[0] != name
        signed = await h.client.post(
            view["endpoints"]["signin"], json=signed_body(view, wallet), headers=page_headers(view)
        )
        assert signed.status_code == 200, signed.text
