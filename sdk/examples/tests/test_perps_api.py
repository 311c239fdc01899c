"""The sample venue API with real tokens from real sign-ins at an in-process Portcullis on the development
chain: a professional's 20x order accepted; a retail wallet's 5x order refused naming leverage (its detail
narrowed to 2x by the policy); a withdrawal without MFA answered with the RFC 9470 challenge, then accepted
with a TOTP step-up; a wallet revoked on the registry refused within the introspection cache time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from eth_account import Account
from perps_api.app import MFA, Config, create_app
from portcullis_resource import ClientAuth, Validator

from app.chain.devchain import DEV_ACCOUNTS
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text
from tests.http.test_code_exchange_eligibility import revoke
from tests.http.test_policy_signin import attest

ISSUER = "http://127.0.0.1:8000"
VENUE = "https://perps.example"
SECRET = "the-perps-api-introspection-secret-0123456789"
PROFESSIONAL = Account.from_key(DEV_ACCOUNTS[2].private_key)
TRADE = {
    "type": "derivatives_trade",
    "actions": ["place_order", "cancel_order"],
    "instruments": ["ETH-PERP"],
    "max_leverage": 50,
    "max_notional": {"amount": "5000000", "currency": "USDC"},
}


@dataclass
class World:
    portcullis: Harness
    venue: httpx.AsyncClient


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clients = tmp_path / "clients.json"
    client = {
        "client_id": "perps-api",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": SECRET,
    }
    clients.write_text(json.dumps([client]))
    settings = make_settings(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'portcullis.db'}",
        dev_chain=True,
        clients_file=clients,
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


async def sign_in(h: Harness, account: Any, **extra: Any) -> httpx.Response:
    offer = (await h.client.post("/siwe/nonce")).json()
    message = siwe_text(offer, account.address, issued_at=h.clock.now())
    return await h.client.post(
        "/siwe/verify", json={"message": message, "signature": sign(account, message), **extra}
    )


def bearer(reply: httpx.Response) -> dict[str, str]:
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def order(leverage: int, notional: str = "10000") -> dict[str, Any]:
    return {
        "instrument": "ETH-PERP",
        "side": "buy",
        "order_type": "limit",
        "leverage": leverage,
        "notional": notional,
        "currency": "USDC",
    }


async def test_a_professionals_20x_order_is_accepted(world: World) -> None:
    signed = await sign_in(
        world.portcullis,
        PROFESSIONAL,
        scope="openid perps:trade portfolio:read",
        authorization_details=[TRADE],
    )
    placed = await world.venue.post("/orders", json=order(20), headers=bearer(signed))
    assert placed.status_code == 201, placed.text
    assert (await world.venue.get("/positions", headers=bearer(signed))).json() == {"positions": []}
    cancelled = await world.venue.delete(f"/orders/{placed.json()['id']}", headers=bearer(signed))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    over = await world.venue.post("/orders", json=order(21), headers=bearer(signed))
    assert over.status_code == 403 and over.json()["error_description"].startswith("leverage:")


async def test_a_retail_wallets_5x_order_is_refused_naming_leverage(world: World) -> None:
    retail = Account.create()
    attest(world.portcullis, retail.address, residence=276, investor_class=1, flags=0b10)  # DE retail, tested
    signed = await sign_in(
        world.portcullis, retail, scope="openid perps:trade", authorization_details=[TRADE]
    )
    [granted] = signed.json()["authorization_details"]
    assert granted["max_leverage"] == 2  # asked 50: the policy narrowed it
    refused = await world.venue.post("/orders", json=order(5), headers=bearer(signed))
    assert refused.status_code == 403, refused.text
    body = refused.json()
    assert body["error"] == "insufficient_authorization_details"
    assert body["error_description"] == "leverage: leverage 5 exceeds the granted max_leverage 2"
    assert 'error="insufficient_authorization_details"' in refused.headers["www-authenticate"]
    assert (await world.venue.post("/orders", json=order(2), headers=bearer(signed))).status_code == 201


async def test_scope_and_bad_bodies(world: World) -> None:
    signed = await sign_in(world.portcullis, PROFESSIONAL, scope="openid")
    assert (await world.venue.get("/positions", headers=bearer(signed))).status_code == 403
    trader = await sign_in(
        world.portcullis, PROFESSIONAL, scope="openid perps:trade", authorization_details=[TRADE]
    )
    bad = await world.venue.post("/orders", content=b"[1", headers=bearer(trader))
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    assert (
        await world.venue.post("/orders", json={**order(2), "leverage": 2.5}, headers=bearer(trader))
    ).status_code == 400
    assert (await world.venue.get("/positions")).status_code == 401


async def test_withdrawal_steps_up_then_is_refused_once_the_wallet_is_revoked(world: World) -> None:
    h = world.portcullis
    destination = f"eip155:1:{PROFESSIONAL.address}"
    withdrawal = {"asset": "USDC", "amount": "500", "destination": destination}
    weak = await sign_in(h, PROFESSIONAL, scope="openid portfolio:read")
    challenge = await world.venue.post("/withdrawals", json=withdrawal, headers=bearer(weak))
    assert challenge.status_code == 401 and challenge.json()["error"] == "insufficient_user_authentication"
    header = challenge.headers["www-authenticate"]
    assert f'acr_values="{MFA}"' in header and 'max_age="300"' in header

    # the client steps up through Portcullis: enrol TOTP, then sign in again with the second factor
    enrolment = (await h.client.post("/mfa/totp", headers=bearer(weak))).json()
    totp = pyotp.TOTP(enrolment["secret"])
    confirm = await h.client.post(
        "/mfa/totp/confirm",
        json={"factor_id": enrolment["factor_id"], "code": totp.at(h.clock.now())},
        headers=bearer(weak),
    )
    assert confirm.status_code == 200, confirm.text
    h.clock.advance(30)
    detail = {"type": "withdrawal", "asset": "USDC", "max_amount": "1000", "destinations": [destination]}
    strong = await sign_in(
        h,
        PROFESSIONAL,
        scope="openid vault:withdraw",
        acr_values=MFA,
        second_factor={"type": "totp", "code": totp.at(h.clock.now())},
        authorization_details=[detail],
    )
    accepted = await world.venue.post("/withdrawals", json=withdrawal, headers=bearer(strong))
    assert accepted.status_code == 201, accepted.text
    too_much = await world.venue.post(
        "/withdrawals", json={**withdrawal, "amount": "1001"}, headers=bearer(strong)
    )
    assert too_much.status_code == 403 and too_much.json()["error_description"].startswith("amount:")

    revoke(h, PROFESSIONAL.address)  # the compliance officer revokes the record on the registry
    h.clock.advance(5)  # the introspection cache time (5 s): no later than this, the token is refused
    refused = await world.venue.post("/withdrawals", json=withdrawal, headers=bearer(strong))
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


async def test_a_page_on_an_allowed_origin_may_call_and_read_the_step_up_challenge(tmp_path: Path) -> None:
    """CORS for the demo dApp's origin (Config.allowed_origins): the preflight allows the token, the DPoP
    proof and JSON; a refusal exposes WWW-Authenticate; another origin gets no allow header."""
    page = "http://127.0.0.1:8000"
    validator = Validator(ISSUER, http=httpx.AsyncClient(base_url=ISSUER))
    app = create_app(Config(tmp_path / "perps.db", allowed_origins=(page,)), validator)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=VENUE) as venue:
        preflight = await venue.options(
            "/withdrawals",
            headers={
                "Origin": page,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, dpop, content-type",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == page
        allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "dpop", "content-type"} <= allowed
        assert "access-control-allow-credentials" not in preflight.headers
        refused = await venue.post("/withdrawals", json={}, headers={"Origin": page})
        assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers
        exposed = refused.headers["access-control-expose-headers"]
        assert "WWW-Authenticate" in exposed and "DPoP-Nonce" in exposed
        foreign = await venue.get("/positions", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in foreign.headers
    app.state.store.close()
