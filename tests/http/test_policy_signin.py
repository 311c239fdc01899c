"""The trading policy at /siwe/verify and /token, on the embedded development chain's seeded wallets
(#2 professional DE with derivatives appropriateness, #3 retail FR, #4 US person): scopes granted or
refused with reasons, RFC 9396 details narrowed by investor class, RFC 9470 step-up for withdrawals."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from eth_account import Account
from web3 import Web3

from app.chain import artifacts
from app.chain.devchain import DEV_ACCOUNTS, DevChainSyncProvider
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text

PROFESSIONAL, RETAIL, US_PERSON = (Account.from_key(DEV_ACCOUNTS[i].private_key) for i in (2, 3, 4))
TRADE = {
    "type": "derivatives_trade",
    "actions": ["place_order", "cancel_order"],
    "instruments": ["ETH-PERP"],
    "max_leverage": 50,
    "max_notional": {"amount": "5000000", "currency": "USDC"},
}


@pytest.fixture
async def h(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Harness]:
    async with running_app(
        make_settings(tmp_path, database_url=sqlite_url, dev_chain=True), FakeClock()
    ) as harness:
        yield harness


async def sign_in(h: Harness, account: Any, **extra: Any) -> Any:
    offer = (await h.client.post("/siwe/nonce")).json()
    assert offer["chain_id"] == 31337
    message = siwe_text(offer, account.address, issued_at=h.clock.now())
    return await h.client.post(
        "/siwe/verify", json={"message": message, "signature": sign(account, message), **extra}
    )


def access(reply: Any) -> dict[str, Any]:
    return dict(jwt.decode(reply.json()["access_token"], options={"verify_signature": False}))


async def test_professional_gets_perps_with_leverage_capped(h: Harness) -> None:
    reply = await sign_in(h, PROFESSIONAL, scope="openid perps:trade", authorization_details=[TRADE])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["scope"] == "openid perps:trade"
    [detail] = body["authorization_details"]
    assert detail["max_leverage"] == 20 and detail["max_notional"]["amount"] == "1000000"
    assert access(reply)["authorization_details"] == body["authorization_details"]
    assert access(reply)["compliance"]["investor_class"] == "professional"


def attest(h: Harness, address: str, *, residence: int, investor_class: int, flags: int) -> None:
    """Write a record on the development chain with its compliance key (as `portcullis registry grant`)."""
    w3 = Web3(DevChainSyncProvider(h.app.state.dev_chain))
    registry = w3.eth.contract(
        address=h.app.state.dev_chain.registry_address, abi=artifacts.load("ComplianceRegistry")["abi"]
    )
    officer = Account.from_key(DEV_ACCOUNTS[1].private_key)
    valid_until = int(time.time()) + 30 * 86400
    record = (residence, investor_class, 2, 1, flags, valid_until, b"\x01" * 32, b"\x02" * 32)
    tx = registry.functions.setRecord(address, record).build_transaction(
        {"from": officer.address, "nonce": w3.eth.get_transaction_count(officer.address), "chainId": 31337}
    )
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(officer.sign_transaction(tx).raw_transaction)
    )
    assert receipt["status"] == 1


async def test_retail_without_appropriateness_gets_no_perps(h: Harness) -> None:
    reply = await sign_in(h, RETAIL, scope="openid perps:trade", authorization_details=[TRADE])
    assert reply.status_code == 200, reply.text
    assert reply.json()["scope"] == "openid" and "authorization_details" not in reply.json()


async def test_retail_with_appropriateness_is_held_to_two_times(h: Harness) -> None:
    wallet = Account.create()
    attest(h, wallet.address, residence=276, investor_class=1, flags=0b10)  # DE, retail, appropriateness
    reply = await sign_in(h, wallet, scope="openid perps:trade", authorization_details=[TRADE])
    assert reply.status_code == 200, reply.text
    assert reply.json()["scope"] == "openid perps:trade"
    [detail] = reply.json()["authorization_details"]
    assert detail["max_leverage"] == 2 and detail["max_notional"]["amount"] == "10000"


async def test_options_are_not_for_retail(h: Harness) -> None:
    reply = await sign_in(h, RETAIL, scope="openid options:trade")
    assert reply.status_code == 200 and reply.json()["scope"] == "openid"


async def test_us_person_is_refused_at_the_registry(h: Harness) -> None:
    reply = await sign_in(h, US_PERSON, scope="openid perps:trade")
    assert reply.status_code == 403 and reply.json()["error"] == "not_eligible"
    assert "us_person" in reply.json()["error_description"]


async def test_withdrawal_needs_a_second_factor(h: Harness) -> None:
    reply = await sign_in(h, PROFESSIONAL, scope="openid vault:withdraw")
    assert reply.status_code == 401 and reply.json()["error"] == "insufficient_user_authentication"
    assert "urn:portcullis:acr:wallet+mfa" in reply.json()["acr_values"]
    assert "access_token" not in reply.text


async def test_malformed_details_name_the_field(h: Harness) -> None:
    bad = {**TRADE, "max_leverage": "lots"}
    reply = await sign_in(h, PROFESSIONAL, scope="openid perps:trade", authorization_details=[bad])
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_authorization_details"
    assert "authorization_details[0].max_leverage" in reply.json()["error_description"]


async def test_refresh_keeps_the_narrowed_grant(h: Harness) -> None:
    reply = await sign_in(h, PROFESSIONAL, scope="openid perps:trade", authorization_details=[TRADE])
    form = {
        "grant_type": "refresh_token",
        "refresh_token": reply.json()["refresh_token"],
        "client_id": "portcullis-demo",
    }
    refreshed = await h.client.post("/token", data=form)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["authorization_details"] == reply.json()["authorization_details"]


async def test_discovery_lists_policy_scopes_and_types(h: Harness) -> None:
    meta = (await h.client.get("/.well-known/openid-configuration")).json()
    assert {"perps:trade", "vault:withdraw", "compliance:read"} <= set(meta["scopes_supported"])
    assert meta["authorization_details_types_supported"] == ["derivatives_trade", "withdrawal"]
