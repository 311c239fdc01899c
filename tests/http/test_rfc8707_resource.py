"""RFC 8707 resource indicators: at /authorize (through PAR and plain) the named resource becomes the
access token's audience beside our own (so userinfo keeps working); at client_credentials it is the
audience. What is not an absolute URI with an authority and without a fragment is invalid_target; a second
resource parameter is refused (docs/AUTHORIZE.md: one value)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest

from tests.conftest import FakeClock, Harness, make_settings, running_app
from tests.flow.client import (
    Flow,
    Key,
    authorize,
    pkce_pair,
    redirect_params,
    secret_client,
    service_client,
    write_clients,
)

ISSUER = "http://127.0.0.1:8000"
CB = "https://broker.example/cb"
SECRET = "a-long-client-secret-for-the-broker-0123456789"
API = "https://api.perps.example/v1"


@pytest.fixture
def service_key() -> Key:
    return Key()


@pytest.fixture
async def h(tmp_path: Path, sqlite_url: str, service_key: Key) -> AsyncIterator[Harness]:
    clients = write_clients(
        tmp_path / "clients.json",
        [
            secret_client("broker", SECRET, [CB], "client_secret_post"),
            service_client("risk-engine", service_key, "service:positions:read"),
        ],
    )
    settings = make_settings(tmp_path, database_url=sqlite_url, clients_file=clients)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


def broker(h: Harness) -> Flow:
    return Flow(h.client, ISSUER, "broker", CB, auth={"client_secret": SECRET})


def audience(reply: Any) -> list[str]:
    aud = jwt.decode(reply.json()["access_token"], options={"verify_signature": False})["aud"]
    return aud if isinstance(aud, list) else [aud]


async def exchange(flow: Flow, got: Any) -> Any:
    form = {"grant_type": "authorization_code", "code": got.code, "code_verifier": got.verifier}
    return await flow.token({**form, "redirect_uri": CB})


@pytest.mark.parametrize("pushed", [True, False], ids=["par", "plain"])
async def test_the_resource_becomes_the_audience_beside_ours(h: Harness, wallet: Any, pushed: bool) -> None:
    got = await authorize(broker(h), wallet, pushed=pushed, resource=API)
    reply = await exchange(broker(h), got)
    assert reply.status_code == 200, reply.text
    own = h.app.state.provider.policy.audience
    assert audience(reply) == [API, own]
    bearer = {"Authorization": f"Bearer {reply.json()['access_token']}"}
    assert (await h.client.get("/userinfo", headers=bearer)).status_code == 200


async def test_without_a_resource_the_audience_is_ours(h: Harness, wallet: Any) -> None:
    reply = await exchange(broker(h), await authorize(broker(h), wallet))
    assert reply.status_code == 200, reply.text
    assert audience(reply) == [h.app.state.provider.policy.audience]


@pytest.mark.parametrize(
    "resource",
    [
        "api/v1",
        "https://api.perps.example/v1#frag",
        "https://api perps.example/",
        "urn:x",
        "https://é.example/",
    ],
)
async def test_what_names_no_server_is_invalid_target(h: Harness, resource: str) -> None:
    # Relative, with a fragment, with a space or a non-ASCII character, or without an authority (a URN
    # names no server to restrict the token to; RFC 8707 section 2 lets the server refuse what it cannot
    # serve).
    # Pushed: the error comes back as JSON from /par (RFC 9126 section 2.3).
    _, challenge = pkce_pair()
    pushed = await broker(h).push(
        response_type="code",
        client_id="broker",
        redirect_uri=CB,
        scope="openid",
        code_challenge=challenge,
        code_challenge_method="S256",
        resource=resource,
    )
    assert pushed.status_code == 400 and pushed.json()["error"] == "invalid_target", pushed.text
    # Plain: the client and its redirect URI are trusted, so the error is redirected with state and iss.
    query = {
        "response_type": "code",
        "client_id": "broker",
        "redirect_uri": CB,
        "scope": "openid",
        "state": "s-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": resource,
    }
    page = await h.client.get("/authorize", params=query)
    assert page.status_code in (302, 303), page.text[:300]
    back = redirect_params(page.headers["location"])
    assert back["error"] == "invalid_target" and back["state"] == "s-1" and back["iss"] == ISSUER


async def test_a_second_resource_parameter_is_refused(h: Harness) -> None:
    _, challenge = pkce_pair()
    form = {
        "response_type": "code",
        "client_id": "broker",
        "client_secret": SECRET,
        "redirect_uri": CB,
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    body = urlencode([*form.items(), ("resource", API), ("resource", "https://other.example/")])
    headers = {"content-type": "application/x-www-form-urlencoded"}
    reply = await h.client.post("/par", content=body, headers=headers)
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_request", reply.text
    assert "resource" in reply.json()["error_description"]


async def test_client_credentials_takes_the_resource_as_its_audience(h: Harness, service_key: Key) -> None:
    service = Flow(h.client, ISSUER, "risk-engine", CB, key=service_key)
    form = {"grant_type": "client_credentials", "scope": "service:positions:read"}
    reply = await service.token({**form, "resource": API}, dpop=False)
    assert reply.status_code == 200, reply.text
    assert audience(reply) == [API]
    refused = await service.token({**form, "resource": "not a uri"}, dpop=False)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
