"""RFC 7662 introspection and RFC 7009 revocation: registered clients authenticate (client_secret_basic
here), access tokens follow their session (sid) and refresh tokens their family; unauthenticated
introspection is refused; revocation answers 200 whatever it was given."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeClock, Harness, make_settings, running_app
from tests.http.test_rfc6749_refresh import refresh, sign_in

SECRET = "s3cret-for-the-exchange-backend-0123456789"


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
async def h(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Harness]:
    clients = tmp_path / "clients.json"
    clients.write_text(
        json.dumps(
            [
                {
                    "client_id": "exchange-backend",
                    "client_name": "Exchange backend",
                    "redirect_uris": ["https://exchange.example/cb"],
                    "grant_types": ["client_credentials"],
                    "response_types": [],
                    "token_endpoint_auth_method": "client_secret_basic",
                    "client_secret": SECRET,
                },
                {
                    "client_id": "mobile",
                    "redirect_uris": ["http://127.0.0.1:7777/cb"],
                    "token_endpoint_auth_method": "none",
                },
            ]
        )
    )
    settings = make_settings(tmp_path, database_url=sqlite_url, clients_file=clients)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


async def introspect(h: Harness, token: str, headers: dict[str, str] | None = None) -> Any:
    return await h.client.post(
        "/introspect", data={"token": token}, headers=headers or basic("exchange-backend", SECRET)
    )


async def test_active_tokens_then_revoked(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet)
    access = await introspect(h, tokens["access_token"])
    assert access.status_code == 200, access.text
    body = access.json()
    assert body["active"] is True and body["sub"] == f"did:pkh:eip155:1:{wallet.address}"
    assert body["client_id"] == "portcullis-demo" and body["scope"] == "openid" and body["sid"]
    assert (await introspect(h, tokens["refresh_token"])).json()["active"] is True

    # the public client revokes its own refresh token: the whole session ends
    revoked = await h.client.post(
        "/revoke", data={"token": tokens["refresh_token"], "client_id": "portcullis-demo"}
    )
    assert revoked.status_code == 200
    assert (await introspect(h, tokens["access_token"])).json() == {"active": False}
    assert (await introspect(h, tokens["refresh_token"])).json() == {"active": False}
    assert (await refresh(h, tokens["refresh_token"])).status_code == 400


async def test_rotated_refresh_token_is_inactive(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet)
    rotated = (await refresh(h, tokens["refresh_token"])).json()
    assert (await introspect(h, tokens["refresh_token"])).json() == {"active": False}
    assert (await introspect(h, rotated["refresh_token"])).json()["active"] is True


async def test_introspection_needs_a_registered_client(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet)
    for headers in (basic("exchange-backend", "wrong"), basic("nobody", SECRET), {}):
        reply = await h.client.post("/introspect", data={"token": tokens["access_token"]}, headers=headers)
        assert reply.status_code == 401 and reply.json()["error"] == "invalid_client"
        assert "active" not in reply.text
    for public_client in ("portcullis-demo", "mobile"):  # PORTCULLIS_CLIENTS, and a registered `none`
        public = await h.client.post(
            "/introspect", data={"token": tokens["access_token"], "client_id": public_client}
        )
        assert public.status_code == 401 and public.json()["error"] == "invalid_client", public.text
        assert "active" not in public.text


async def test_a_basic_header_with_non_ascii_bytes_is_invalid_client(h: Harness, wallet: Any) -> None:
    # Found by tests/http/test_fuzz_post_endpoints.py: Starlette hands such a header over as latin-1 text,
    # which base64 refused with a ValueError (a 500) rather than binascii.Error.
    tokens = await sign_in(h, wallet)
    for path in ("/introspect", "/revoke"):
        reply = await h.client.post(
            path, data={"token": tokens["access_token"]}, headers={"Authorization": b"Basic \xc5YWJj"}
        )
        assert reply.status_code == 401 and reply.json()["error"] == "invalid_client", (path, reply.text)


async def test_revocation_is_quiet_about_bad_tokens(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet)
    for token in ("garbage", tokens["id_token"]):
        reply = await h.client.post("/revoke", data={"token": token, "client_id": "portcullis-demo"})
        assert reply.status_code == 200
    # another client cannot revoke this client's session
    other = await h.client.post(
        "/revoke", data={"token": tokens["refresh_token"]}, headers=basic("exchange-backend", SECRET)
    )
    assert other.status_code == 200
    assert (await introspect(h, tokens["refresh_token"])).json()["active"] is True
    missing = await h.client.post("/revoke", data={"client_id": "portcullis-demo"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
