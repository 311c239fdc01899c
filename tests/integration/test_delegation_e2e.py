"""Delegation end to end with real signatures: a wallet delegates to its bot; the bot's DPoP-bound token
(``act`` = the bot) places an in-cap order at the sample perps API (sdk/examples/perps_api, the
resource-server SDK) and is refused an over-cap one; the wallet revokes and the next token request is
refused and introspection says inactive. Then on a real ``portcullis serve`` with its development chain:
the compliance officer revokes the wallet with ``portcullis registry revoke`` and the delegation ends by
itself (``delegation.revoked``, reason not_eligible); ``portcullis delegations list|revoke`` for the
operator."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from perps_api.app import Config, create_app
from portcullis_resource import ClientAuth, Validator

from app.chain.devchain import DEV_ACCOUNTS
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign
from tests.integration.server import ServerProcess
from tests.oauth.bots import JWT_BEARER, Bot, bot_token, delegate, delegation_message

ISSUER = "http://127.0.0.1:8000"
VENUE = "https://perps.example"
SECRET = "the-perps-api-introspection-secret-0123456789"
PROFESSIONAL = Account.from_key(DEV_ACCOUNTS[2].private_key)
SERVER_PORT = 19101  # this branch's port range (19100-19199)


def clients_file(tmp_path: Path) -> Path:
    path = tmp_path / "clients.json"
    client = {
        "client_id": "perps-api",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": SECRET,
    }
    path.write_text(json.dumps([client]))
    return path


def basic() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"perps-api:{SECRET}".encode()).decode()}


@dataclass
class World:
    portcullis: Harness
    venue: httpx.AsyncClient


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = make_settings(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'portcullis.db'}",
        dev_chain=True,
        clients_file=clients_file(tmp_path),
    )
    async with running_app(settings, FakeClock()) as h:
        validator = Validator(
            ISSUER,
            http=h.client,
            clock=lambda: h.clock.now().timestamp(),
            introspection=ClientAuth("perps-api", secret=SECRET),
        )
        app = create_app(Config(tmp_path / "perps.db"), validator)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=VENUE) as venue:
            yield World(h, venue)
        app.state.store.close()


def order(leverage: int, notional: str = "10000") -> dict[str, Any]:
    return {
        "instrument": "ETH-PERP",
        "side": "buy",
        "order_type": "limit",
        "leverage": leverage,
        "notional": notional,
        "currency": "USDC",
    }


async def place(world: World, bot: Bot, token: str, body: dict[str, Any]) -> httpx.Response:
    proof = bot.proof("POST", f"{VENUE}/orders", world.portcullis.clock.now(), token)
    return await world.venue.post(
        "/orders", json=body, headers={"Authorization": f"DPoP {token}", "DPoP": proof}
    )


async def wallet_token(h: Harness) -> str:
    from tests.http.test_policy_signin import sign_in

    reply = await sign_in(h, PROFESSIONAL)
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["access_token"]
    return token


async def test_bot_trades_within_its_cap_until_the_wallet_revokes(world: World) -> None:
    h, bot = world.portcullis, Bot("Ed25519")
    created = await delegate(h, PROFESSIONAL, bot)  # ETH-PERP, place/cancel, at most 5x, 50 000 USDC
    assert created.status_code == 201, created.text
    delegation_id = created.json()["delegation_id"]
    reply = await bot_token(h, bot, delegation_id)
    assert reply.status_code == 200, reply.text
    token = reply.json()["access_token"]

    accepted = await place(world, bot, token, order(5))
    assert accepted.status_code == 201, accepted.text
    too_much_leverage = await place(world, bot, token, order(10))
    assert too_much_leverage.status_code == 403, too_much_leverage.text
    assert "leverage" in too_much_leverage.json()["error_description"]
    too_big = await place(world, bot, token, order(2, notional="60000"))
    assert too_big.status_code == 403 and "notional" in too_big.json()["error_description"]
    stolen = await world.venue.post("/orders", json=order(5), headers={"Authorization": f"Bearer {token}"})
    assert stolen.status_code == 401  # bound to the bot's key: a bearer copy is worthless

    wallet = await wallet_token(h)
    revoked = await h.client.delete(
        f"/delegations/{delegation_id}", headers={"Authorization": f"Bearer {wallet}"}
    )
    assert revoked.status_code == 200, revoked.text
    refused = await bot_token(h, bot, delegation_id)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    state = await h.client.post("/introspect", data={"token": token}, headers=basic())
    assert state.json() == {"active": False}


def test_registry_revocation_ends_the_delegation(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path,
        port=SERVER_PORT,
        PORTCULLIS_CLIENTS_FILE=str(clients_file(tmp_path)),
        PORTCULLIS_RATE_LIMITS="false",
    )
    bots = [Bot(), Bot("Ed25519")]
    with server, httpx.Client(base_url=server.url, timeout=30) as http:
        harness = _SyncHarness(http, server.url)
        ids = [harness.delegate(bot) for bot in bots]
        token = harness.token(bots[0], ids[0])
        assert http.post("/introspect", data={"token": token}, headers=basic()).json()["active"] is True

        operator = server.portcullis("delegations", "revoke", ids[1], "--operator", "oncall")
        assert operator.returncode == 0, operator.stderr
        assert json.loads(operator.stdout)["state"] == "revoked"
        assert harness.token_reply(bots[1], ids[1]).status_code == 400

        revoke = server.portcullis(
            "registry", "revoke", PROFESSIONAL.address, "--reason", "kyc-withdrawn", timeout=120
        )
        assert revoke.returncode == 0, revoke.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if http.post("/introspect", data={"token": token}, headers=basic()).json() == {"active": False}:
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the bot's token stayed active after the registry revoked the wallet")
        refused = harness.token_reply(bots[0], ids[0])
        assert refused.status_code in (400, 403) and "access_token" not in refused.text
        deadline = time.monotonic() + 30
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            listed = server.portcullis("delegations", "list")
            assert listed.returncode == 0, listed.stderr
            rows = [json.loads(line) for line in listed.stdout.splitlines()]
            if all(r["state"] == "revoked" for r in rows):
                break
            time.sleep(0.5)
        by_id = {r["delegation_id"]: r for r in rows}
        assert by_id[ids[0]]["revoked_reason"] == "not_eligible"
        assert by_id[ids[1]]["revoked_reason"] == "revoked_by_operator"
        with sqlite3.connect(tmp_path / "portcullis.db") as db:
            found = db.execute(
                "SELECT reason, actor, data FROM audit_log WHERE type = 'delegation.revoked'"
            ).fetchall()
        revoked = [{"reason": r, "actor": a, "data": json.loads(d)} for r, a, d in found]
        assert {(e["reason"], e["data"]["delegate_jkt"]) for e in revoked} == {
            ("revoked_by_operator", bots[1].jkt),
            ("not_eligible", bots[0].jkt),
        }
        assert any(e["actor"] == "operator:oncall" for e in revoked)


class _SyncHarness:
    """The wallet's and bot's HTTP calls against a real server (the wall clock)."""

    def __init__(self, http: httpx.Client, url: str) -> None:
        self.http, self.url = http, url

    def delegate(self, bot: Bot) -> str:
        import asyncio

        class _H:  # delegation_message needs a client and a clock; it only posts /siwe/nonce
            def __init__(self, outer: _SyncHarness) -> None:
                self.client = httpx.AsyncClient(base_url=outer.url)
                self.clock = FakeClock()

        async def build() -> str:
            h = _H(self)
            try:
                return await delegation_message(h, PROFESSIONAL.address, bot)  # type: ignore[arg-type]
            finally:
                await h.client.aclose()

        text = asyncio.run(build())
        reply = self.http.post("/delegations", json={"message": text, "signature": sign(PROFESSIONAL, text)})
        assert reply.status_code == 201, reply.text
        delegation_id: str = reply.json()["delegation_id"]
        return delegation_id

    def token_reply(self, bot: Bot, delegation_id: str) -> httpx.Response:
        now = FakeClock().now()
        form = {"grant_type": JWT_BEARER, "assertion": bot.assertion(self.url, delegation_id, now)}
        return self.http.post(
            "/token", data=form, headers={"DPoP": bot.proof("POST", f"{self.url}/token", now)}
        )

    def token(self, bot: Bot, delegation_id: str) -> str:
        reply = self.token_reply(bot, delegation_id)
        assert reply.status_code == 200, reply.text
        token: str = reply.json()["access_token"]
        return token
