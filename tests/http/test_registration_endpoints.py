"""RFC 7591 registration and RFC 7592 client configuration through the running app, on SQLite and PostgreSQL:
off by default, guarded by the initial access token and the registration access token, secrets shown once
and kept as hashes, clients usable (and then unusable) at /introspect, static clients out of reach, every
change in the audit trail without a secret, and other workers catching up at their reload."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import select

from app.storage.models_authz import RegisteredClient
from tests.audit.tamper import rows
from tests.conftest import FakeClock, Harness, make_settings, running_app
from tests.mfa.conftest import assert_chain_intact

IAT = "initial-access-token-for-the-tests-0123456789"
STATIC_SECRET = "s3cret-for-the-exchange-backend-0123456789"
REDIRECT = "https://dapp.example/callback"


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def static_clients(tmp_path: Path, *extra: dict[str, Any]) -> Path:
    path = tmp_path / "clients.json"
    exchange = {
        "client_id": "exchange-backend",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": STATIC_SECRET,
    }
    path.write_text(json.dumps([exchange, *extra]))
    return path


def registering(tmp_path: Path, database_url: str, **overrides: Any) -> Any:
    return make_settings(
        tmp_path,
        database_url=database_url,
        clients_file=static_clients(tmp_path),
        registration_enabled=True,
        registration_initial_access_token=IAT,
        **overrides,
    )


@pytest.fixture
async def h(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    async with running_app(registering(tmp_path, database_url), FakeClock()) as harness:
        yield harness


async def register(h: Harness, body: dict[str, Any], token: str = IAT) -> httpx.Response:
    return await h.client.post("/register", json=body, headers=bearer(token))


async def registered(h: Harness, **body: Any) -> dict[str, Any]:
    reply = await register(h, {"redirect_uris": [REDIRECT], **body})
    assert reply.status_code == 201, reply.text
    info: dict[str, Any] = reply.json()
    return info


async def authenticates(h: Harness, client_id: str, secret: str) -> bool:
    """Can the client authenticate at /introspect (client_secret_basic)?"""
    reply = await h.client.post(
        "/introspect", data={"token": "not-a-token"}, headers=basic(client_id, secret)
    )
    assert reply.status_code in (200, 401), reply.text
    if reply.status_code == 401:
        assert reply.json()["error"] == "invalid_client"
    return reply.status_code == 200


async def stored(h: Harness) -> list[dict[str, Any]]:
    async with h.app.state.provider.store.engine.connect() as conn:
        return [r._asdict() for r in (await conn.execute(select(RegisteredClient.__table__))).all()]


def ec_jwks() -> dict[str, Any]:
    jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": "k1"}]}


def assert_no_store(reply: httpx.Response) -> None:
    assert reply.headers["cache-control"] == "no-store"


# -- switched off --------------------------------------------------------------------------------------------


async def test_registration_is_off_by_default(tmp_path: Path, sqlite_url: str) -> None:
    async with running_app(make_settings(tmp_path, database_url=sqlite_url), FakeClock()) as h:
        assert h.settings.registration_enabled is False
        for method, path in (("POST", "/register"), ("GET", "/register/x"), ("DELETE", "/register/x")):
            reply = await h.client.request(method, path, json={}, headers=bearer(IAT))
            assert reply.status_code == 404 and reply.json()["error"] == "not_found"
            assert "not enabled" in reply.json()["error_description"]
        discovery = (await h.client.get("/.well-known/openid-configuration")).json()
        assert "registration_endpoint" not in discovery


async def test_discovery_names_the_registration_endpoint_when_enabled(h: Harness) -> None:
    discovery = (await h.client.get("/.well-known/openid-configuration")).json()
    assert discovery["registration_endpoint"] == "http://127.0.0.1:8000/register"


# -- RFC 7591: the initial access token ----------------------------------------------------------------------


async def test_registration_needs_the_initial_access_token(h: Harness) -> None:
    body = {"redirect_uris": [REDIRECT]}
    missing = await h.client.post("/register", json=body)
    assert missing.status_code == 401 and missing.json()["error"] == "invalid_request"
    assert missing.headers["www-authenticate"] == "Bearer"
    basic_scheme = await h.client.post("/register", json=body, headers=basic("x", IAT))
    assert basic_scheme.status_code == 401
    for wrong in ("wrong", IAT + "x", IAT[:-1]):
        reply = await register(h, body, wrong)
        assert reply.status_code == 401 and reply.json()["error"] == "invalid_token", reply.text
        assert 'error="invalid_token"' in reply.headers["www-authenticate"]
    # a wrong token is refused before the body is read: no 400 for a bad body
    assert (await h.client.post("/register", content=b"[", headers=bearer("wrong"))).status_code == 401
    assert await stored(h) == []


# -- RFC 7591: metadata --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"redirect_uris": ["http://dapp.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": [REDIRECT + "#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["dapp.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": [REDIRECT], "response_types": ["token"]}, "invalid_client_metadata"),
        (
            {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_jwt"},
            "invalid_client_metadata",
        ),
        (
            {
                "grant_types": ["client_credentials"],
                "response_types": [],
                "token_endpoint_auth_method": "none",
            },
            "invalid_client_metadata",
        ),
        ({"redirect_uris": [REDIRECT], "scope": "openid root"}, "invalid_client_metadata"),
        (
            {"redirect_uris": [REDIRECT], "client_secret": "my-own-secret-please-0123456789"},
            "invalid_client_metadata",
        ),
        ({"redirect_uris": [REDIRECT], "access_token_lifetime": 86400}, "invalid_client_metadata"),
        ({}, "invalid_client_metadata"),
    ],
)
async def test_bad_metadata_is_400_with_the_rfc7591_code(
    h: Harness, body: dict[str, Any], error: str
) -> None:
    reply = await register(h, body)
    assert reply.status_code == 400 and reply.json()["error"] == error, reply.text
    assert_no_store(reply)
    assert await stored(h) == []


async def test_a_body_that_is_not_a_json_object_is_invalid_request(h: Harness) -> None:
    for raw in (b"[]", b"{", b""):
        reply = await h.client.post("/register", content=raw, headers=bearer(IAT))
        assert reply.status_code == 400 and reply.json()["error"] == "invalid_request"


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8765/cb", "http://localhost:3000/cb", "http://[::1]/cb"])
async def test_http_redirect_uris_on_loopback_are_accepted(h: Harness, uri: str) -> None:
    info = await registered(h, redirect_uris=[uri], token_endpoint_auth_method="none")
    assert info["redirect_uris"] == [uri] and "client_secret" not in info


# -- RFC 7591 section 3.2.1: the response, once --------------------------------------------------------------


async def test_secret_is_returned_once_and_stored_as_a_hash(h: Harness) -> None:
    reply = await register(h, {"redirect_uris": [REDIRECT], "client_name": "dApp", "logo_uri": "ignored"})
    assert reply.status_code == 201, reply.text
    assert_no_store(reply)
    info = reply.json()
    client_id, secret, token = info["client_id"], info["client_secret"], info["registration_access_token"]
    assert len(client_id) >= 20 and len(secret) >= 40 and len(token) >= 40
    assert info["token_endpoint_auth_method"] == "client_secret_basic"
    assert info["grant_types"] == ["authorization_code"] and info["response_types"] == ["code"]
    assert info["client_secret_expires_at"] == 0 and info["client_id_issued_at"] == int(
        h.clock.now().timestamp()
    )
    assert info["registration_client_uri"] == f"http://127.0.0.1:8000/register/{client_id}"
    assert "logo_uri" not in info and "client_secret_hash" not in info

    [row] = await stored(h)
    assert row["client_id"] == client_id and row["deleted_at"] is None
    assert row["registration_token_hash"] == sha256(token)
    assert json.loads(row["metadata_json"])["client_secret_hash"].startswith("scrypt$")
    assert secret not in repr(row) and token not in repr(row)

    assert await authenticates(h, client_id, secret)
    assert not await authenticates(h, client_id, secret + "x")
    read = await h.client.get(f"/register/{client_id}", headers=bearer(token))
    assert read.status_code == 200 and "client_secret" not in read.json()
    assert_no_store(read)


# -- RFC 7592: read, replace, delete -------------------------------------------------------------------------


async def test_read_replace_and_delete_with_the_registration_token(h: Harness) -> None:
    info = await registered(h, scope="openid")
    client_id, secret, token = info["client_id"], info["client_secret"], info["registration_access_token"]
    uri = info["registration_client_uri"].removeprefix("http://127.0.0.1:8000")

    read = (await h.client.get(uri, headers=bearer(token))).json()
    assert read["registration_access_token"] == token  # RFC 7592 section 3: echoed, never re-issued
    assert read["scope"] == "openid" and read["redirect_uris"] == [REDIRECT]

    new_uri = "https://dapp.example/v2/callback"
    body = {"client_id": client_id, "redirect_uris": [new_uri], "scope": "openid perps:trade"}
    replaced = await h.client.put(uri, json=body, headers=bearer(token))
    assert replaced.status_code == 200, replaced.text
    assert_no_store(replaced)
    assert replaced.json()["redirect_uris"] == [new_uri] and replaced.json()["scope"] == "openid perps:trade"
    assert "client_secret" not in replaced.json()  # the issued secret stays, unseen
    assert await authenticates(h, client_id, secret)
    assert (await h.client.get(uri, headers=bearer(token))).json()["redirect_uris"] == [new_uri]
    client = h.app.state.provider.client_registry.get(client_id)
    assert client.redirect_uris == (new_uri,)

    # private_key_jwt: the secret is dropped; back to a secret method: a fresh secret, shown once
    pkjwt = {**body, "token_endpoint_auth_method": "private_key_jwt", "jwks": ec_jwks()}
    assert (await h.client.put(uri, json=pkjwt, headers=bearer(token))).status_code == 200
    assert not await authenticates(h, client_id, secret)
    back = await h.client.put(
        uri, json={**body, "token_endpoint_auth_method": "client_secret_basic"}, headers=bearer(token)
    )
    fresh = back.json()["client_secret"]
    assert fresh != secret and await authenticates(h, client_id, fresh)

    deleted = await h.client.delete(uri, headers=bearer(token))
    assert deleted.status_code == 204 and deleted.content == b""
    assert_no_store(deleted)
    assert not await authenticates(h, client_id, fresh)
    for method in ("GET", "PUT", "DELETE"):
        again = await h.client.request(method, uri, json=body, headers=bearer(token))
        assert again.status_code == 401 and again.json()["error"] == "invalid_token"
    [row] = await stored(h)
    assert row["deleted_at"] is not None


async def test_wrong_or_foreign_registration_tokens_are_401(h: Harness) -> None:
    a, b = await registered(h), await registered(h)
    uri = f"/register/{a['client_id']}"
    for token in (b["registration_access_token"], IAT, "nonsense", a["registration_access_token"] + "x"):
        for method in ("GET", "PUT", "DELETE"):
            reply = await h.client.request(
                method, uri, json={"client_id": a["client_id"]}, headers=bearer(token)
            )
            assert reply.status_code == 401 and reply.json()["error"] == "invalid_token", (method, reply.text)
    missing = await h.client.get(uri)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    unknown = await h.client.get("/register/no-such-client", headers=bearer(a["registration_access_token"]))
    assert unknown.status_code == 401
    assert await authenticates(h, a["client_id"], a["client_secret"])


async def test_update_requests_follow_rfc7592_section_2_2(h: Harness) -> None:
    info = await registered(h)
    uri, auth = f"/register/{info['client_id']}", bearer(info["registration_access_token"])
    body = {"client_id": info["client_id"], "redirect_uris": [REDIRECT]}
    cases = [
        ({"redirect_uris": [REDIRECT]}, "invalid_request"),
        ({**body, "client_id": "another"}, "invalid_request"),
        ({**body, "registration_access_token": info["registration_access_token"]}, "invalid_request"),
        ({**body, "client_secret": "a-secret-i-would-rather-have-0123"}, "invalid_request"),
        ({**body, "redirect_uris": ["http://dapp.example/cb"]}, "invalid_redirect_uri"),
        ({**body, "grant_types": ["password"]}, "invalid_client_metadata"),
    ]
    for request, error in cases:
        reply = await h.client.put(uri, json=request, headers=auth)
        assert reply.status_code == 400 and reply.json()["error"] == error, (request, reply.text)
    repeated = await h.client.put(uri, json={**body, "client_secret": info["client_secret"]}, headers=auth)
    assert repeated.status_code == 200
    assert await authenticates(h, info["client_id"], info["client_secret"])


# -- static clients ------------------------------------------------------------------------------------------


async def test_static_clients_cannot_be_read_changed_or_deleted(h: Harness) -> None:
    body = {"client_id": "exchange-backend", "grant_types": ["client_credentials"], "response_types": []}
    for token in (IAT, STATIC_SECRET, "anything"):
        for method in ("GET", "PUT", "DELETE"):
            reply = await h.client.request(
                method, "/register/exchange-backend", json=body, headers=bearer(token)
            )
            assert reply.status_code == 401 and reply.json()["error"] == "invalid_token"
    assert await authenticates(h, "exchange-backend", STATIC_SECRET)


async def test_a_static_client_shadows_a_dynamic_one_of_the_same_id(
    tmp_path: Path, database_url: str
) -> None:
    clock = FakeClock()
    async with running_app(registering(tmp_path, database_url), clock) as h:
        info = await registered(h)
    client_id, token = info["client_id"], info["registration_access_token"]
    other = "the-static-secret-of-this-id-0123456789"
    static = {
        "client_id": client_id,
        "redirect_uris": ["https://operator.example/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": other,
    }
    settings = registering(tmp_path, database_url).model_copy(
        update={"clients_file": static_clients(tmp_path, static)}
    )
    async with running_app(settings, clock) as h:
        assert await authenticates(h, client_id, other)
        assert not await authenticates(h, client_id, info["client_secret"])
        for method in ("GET", "PUT", "DELETE"):
            reply = await h.client.request(method, f"/register/{client_id}", json={}, headers=bearer(token))
            assert reply.status_code == 401
        assert await authenticates(h, client_id, other)


# -- audit trail ---------------------------------------------------------------------------------------------


async def test_every_change_is_audited_without_secrets(h: Harness) -> None:
    info = await registered(h, scope="openid")
    client_id, token = info["client_id"], info["registration_access_token"]
    uri, auth = f"/register/{client_id}", bearer(token)
    body = {"client_id": client_id, "redirect_uris": [REDIRECT], "scope": "openid perps:trade"}
    assert (await h.client.put(uri, json=body, headers=auth)).status_code == 200
    assert (await h.client.delete(uri, headers=auth)).status_code == 204

    engine = h.app.state.provider.store.engine
    log = [r for r in await rows(engine) if r["type"].startswith("client.")]
    assert [e["type"] for e in log] == ["client.registered", "client.updated", "client.deleted"]
    assert all(e["client_id"] == client_id and e["outcome"] == "success" for e in log)
    registered_data = json.loads(log[0]["data"])
    assert registered_data["registration_token_sha256"] == sha256(token)
    assert registered_data["initial_access_token_sha256"] == sha256(IAT)
    assert registered_data["secret_issued"] is True
    assert registered_data["metadata"]["redirect_uris"] == [REDIRECT]
    assert json.loads(log[1]["data"])["changed"] == ["scope"]
    assert json.loads(log[2]["data"]) == {"revoked_refresh_tokens": 0}
    everything = repr(await rows(engine))
    for secret in (info["client_secret"], token, IAT):
        assert secret not in everything
    assert "scrypt$" not in everything
    await assert_chain_intact(engine)


# -- several workers -----------------------------------------------------------------------------------------


async def test_other_workers_see_changes_at_their_reload(tmp_path: Path, database_url: str) -> None:
    """SQLite (one process in production): another app sees a change at its reload. PostgreSQL: at once,
    through the change's NOTIFY (app.storage.changes), without a reload."""
    clock = FakeClock()
    settings = registering(tmp_path, database_url)
    notified = database_url.startswith("postgresql")
    async with running_app(settings, clock) as first, running_app(settings, clock) as second:
        if notified:  # both listeners are up before the change
            for h in (first, second):
                listener = h.app.state.change_listener
                await asyncio.wait_for(listener.connected.wait(), 10)
        info = await registered(first)
        client_id, secret = info["client_id"], info["client_secret"]
        assert await authenticates(first, client_id, secret)
        if notified:
            assert await eventually(lambda: authenticates(second, client_id, secret))
        else:
            assert not await authenticates(second, client_id, secret)  # not until its reload
            assert await second.app.state.provider.registrar.reload() == 1
            assert await authenticates(second, client_id, secret)
        # the registration token works on any worker: it is checked against the database
        auth = bearer(info["registration_access_token"])
        assert (await second.client.delete(f"/register/{client_id}", headers=auth)).status_code == 204
        assert not await authenticates(second, client_id, secret)
        if notified:
            assert await eventually(lambda: not_(authenticates(first, client_id, secret)))
        else:
            assert await authenticates(first, client_id, secret)  # until its reload
            assert await first.app.state.provider.registrar.reload() == 0
            assert not await authenticates(first, client_id, secret)


async def not_(check: Awaitable[bool]) -> bool:
    return not await check


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 2.0) -> bool:
    """Whether ``check`` holds within ``seconds`` (the propagation bound of docs/DEPLOY.md)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


# -- rate limits ---------------------------------------------------------------------------------------------


async def test_registration_is_rate_limited_per_ip(tmp_path: Path, sqlite_url: str) -> None:
    settings = registering(tmp_path, sqlite_url, rate_limits=True)
    async with running_app(settings, FakeClock()) as h:
        statuses = [(await register(h, {}, "wrong")).status_code for _ in range(6)]
        assert statuses == [401] * 5 + [429]  # register:ip allows a burst of 5
        limited = await register(h, {"redirect_uris": [REDIRECT]})
        assert limited.status_code == 429 and "retry-after" in limited.headers
