"""Fault table, PostgreSQL: refused, black-holed and slow links between a real server and its database.

A ``portcullis serve`` process reaches PostgreSQL only through the tests' own TCP proxy
(tests/faultproxy.py). For each fault, every endpoint that needs the database answers 503
``temporarily_unavailable`` with ``Retry-After`` within 5 s, ``/ready`` answers 503 within 2 s, JWKS and
discovery are still served, and once the link is back a sign-in succeeds within 10 s, without a restart.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlalchemy.engine import make_url

from tests.conftest import TEST_SECRET, postgres_database, sign, siwe_text
from tests.faultproxy import FaultProxy, Mode
from tests.integration.server import ServerProcess

BACKEND = "exchange-backend"
BACKEND_SECRET = "s3cret-for-the-exchange-backend-0123456789"
DB_BOUND = 5.0  # seconds: an endpoint that needs the database
READY_BOUND = 2.0  # seconds: /ready, always
RECOVERY_BOUND = 10.0  # seconds from the database's return to a successful sign-in


@dataclass
class Rig:
    proxy: FaultProxy
    server: ServerProcess
    client: httpx.AsyncClient


def _clients_file(tmp_path: Path) -> Path:
    path = tmp_path / "clients.json"
    backend = {
        "client_id": BACKEND,
        "client_name": "Exchange backend",
        "redirect_uris": ["https://exchange.example/cb"],
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": BACKEND_SECRET,
    }
    path.write_text(json.dumps([backend]))
    return path


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with postgres_database() as url:
        real = make_url(url)
        async with FaultProxy(real.host or "127.0.0.1", real.port or 5432, delay=3.0) as proxy:
            proxied = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
            server = ServerProcess(
                tmp_path,
                PORTCULLIS_DATABASE_URL=proxied,
                PORTCULLIS_SECRET_KEY=TEST_SECRET,
                PORTCULLIS_DEV_CHAIN="false",
                PORTCULLIS_RATE_LIMITS="false",
                PORTCULLIS_CLIENTS_FILE=str(_clients_file(tmp_path)),
            )
            # The proxy runs on this event loop: the server's blocking start and stop go to a thread.
            await asyncio.to_thread(server.__enter__)
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                    yield Rig(proxy, server, client)
            finally:
                proxy.mode = "pass"
                await asyncio.to_thread(server.__exit__)


async def sign_in(client: httpx.AsyncClient, account: Any) -> httpx.Response:
    offer = await client.post("/siwe/nonce")
    if offer.status_code != 201:
        return offer
    return await client.post("/siwe/verify", json=signed(offer.json(), account))


def signed(offer: dict[str, Any], account: Any) -> dict[str, str]:
    message = siwe_text(offer, account.address, issued_at=datetime.now(UTC))
    return {"message": message, "signature": sign(account, message)}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    reply = await call
    return reply, time.monotonic() - started


def assert_unavailable(reply: httpx.Response, elapsed: float, bound: float, what: str) -> None:
    assert reply.status_code == 503, f"{what}: {reply.status_code} {reply.text}"
    assert reply.json()["error"] == "temporarily_unavailable", what
    retry = reply.headers.get("retry-after")
    assert retry is not None and retry.isdigit() and int(retry) > 0, f"{what}: Retry-After {retry!r}"
    assert elapsed < bound, f"{what}: answered after {elapsed:.1f} s (bound {bound} s)"


async def test_database_faults_fail_closed_fast_and_recover(rig: Rig) -> None:
    # One server through all three faults in turn: each recovery is also a recovery without a restart.
    for mode in ("refuse", "drop", "slow"):
        await fault_then_recovery(rig, mode)


async def fault_then_recovery(rig: Rig, mode: Mode) -> None:
    c, wallet = rig.client, Account.create()
    # Before the fault: a session (for /token, /introspect, /revoke) and an unused nonce (for /siwe/verify).
    first = await sign_in(c, wallet)
    assert first.status_code == 200, first.text
    tokens = first.json()
    offer = (await c.post("/siwe/nonce")).json()

    rig.proxy.mode = mode
    calls = {
        "/siwe/nonce": lambda: c.post("/siwe/nonce"),
        "/siwe/verify": lambda: c.post("/siwe/verify", json=signed(offer, wallet)),
        "/token": lambda: c.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": "portcullis-demo",
            },
        ),
        "/introspect": lambda: c.post(
            "/introspect", data={"token": tokens["access_token"]}, headers=basic(BACKEND, BACKEND_SECRET)
        ),
        "/revoke": lambda: c.post(
            "/revoke", data={"token": tokens["refresh_token"], "client_id": "portcullis-demo"}
        ),
    }
    for path, call in calls.items():
        reply, elapsed = await timed(call())
        assert_unavailable(reply, elapsed, DB_BOUND, f"{mode} {path}")
    reply, elapsed = await timed(c.get("/ready"))
    assert_unavailable(reply, elapsed, READY_BOUND, f"{mode} /ready")
    for path in ("/jwks", "/.well-known/openid-configuration"):
        reply, elapsed = await timed(c.get(path))
        assert reply.status_code == 200 and elapsed < READY_BOUND, f"{mode} {path}: {reply.status_code}"
    # Many requests at once must not queue behind each other for longer than the bound either.
    started = time.monotonic()
    burst = await asyncio.gather(*(c.post("/siwe/nonce") for _ in range(40)))
    assert {r.status_code for r in burst} == {503}, f"{mode}: burst {[r.status_code for r in burst]}"
    assert time.monotonic() - started < DB_BOUND, f"{mode}: burst took {time.monotonic() - started:.1f} s"

    rig.proxy.mode = "pass"
    back = time.monotonic()
    while True:
        again = await sign_in(c, wallet)
        if again.status_code == 200:
            break
        assert again.status_code == 503, again.text
        assert time.monotonic() - back < RECOVERY_BOUND, f"{mode}: not recovered after {RECOVERY_BOUND} s"
        await asyncio.sleep(0.2)
    assert time.monotonic() - back < RECOVERY_BOUND
    assert (await c.get("/ready")).status_code == 200
    # The session from before the fault is still served: nothing was lost or revoked by the outage.
    still = await c.post(
        "/introspect", data={"token": tokens["access_token"]}, headers=basic(BACKEND, BACKEND_SECRET)
    )
    assert still.status_code == 200 and still.json()["active"] is True, still.text
