"""RFC 7009 section 2.1 ("the token cannot be used again after the revocation") at /userinfo and /mfa: an
access token that introspection calls inactive is refused by userinfo and the second-factor endpoints with
RFC 6750 invalid_token, and they agree in every case: revoked, logged out, its family ended for reuse, its
wallet revoked in the registry, its registry record past validUntil. Chains: the embedded development EVM
(py-evm, whose block time follows the test's clock) and a real anvil node with the `portcullis registry`
CLI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from eth_account import Account
from web3 import Web3

from app.chain.devchain import DEV_ACCOUNTS
from app.oidc.tokens import Grant, mint_access_token
from tests.anvil import Anvil, deploy, send
from tests.conftest import FakeClock, Harness, make_settings, running_app
from tests.flow.client import authorize, secret_client, write_clients
from tests.http import test_code_exchange_eligibility as dev
from tests.http.test_rfc6749_refresh import refresh, sign_in
from tests.http.test_rfc7662_introspection import SECRET, basic
from tests.integration.test_compliance_e2e import registry_cli

BACKEND = "exchange-backend"


def backend() -> dict[str, Any]:
    """The resource server that introspects (RFC 7662 needs an authenticated client)."""
    return {
        "client_id": BACKEND,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": SECRET,
    }


@pytest.fixture
async def h(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Harness]:
    clients = write_clients(tmp_path / "clients.json", [backend()])
    settings = make_settings(tmp_path, database_url=sqlite_url, clients_file=clients)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


async def live(h: Harness, access_token: str) -> bool:
    """Ask userinfo, the second-factor endpoints and introspection about ``access_token``; they must agree.
    True when all accept it."""
    answer = await h.client.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    factors = await h.client.get("/mfa/factors", headers={"Authorization": f"Bearer {access_token}"})
    assert (factors.status_code == 200) == (answer.status_code == 200), f"/mfa/factors: {factors.text}"
    if factors.status_code != 200:
        assert factors.status_code == 401 and factors.json()["error"] == "invalid_token", factors.text
    described = await h.client.post(
        "/introspect", data={"token": access_token}, headers=basic(BACKEND, SECRET)
    )
    assert described.status_code == 200, described.text
    active = described.json()["active"]
    if answer.status_code == 200:
        assert active is True, f"userinfo accepts a token introspection calls inactive: {answer.text}"
        return True
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_token"
    assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert active is False, f"introspection calls active a token userinfo refuses: {answer.text}"
    return False


async def test_revoked_access_token_is_dead(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet)
    other = await sign_in(h, wallet)
    assert await live(h, tokens["access_token"])
    revoked = await h.client.post(
        "/revoke", data={"token": tokens["access_token"], "client_id": "portcullis-demo"}
    )
    assert revoked.status_code == 200
    assert not await live(h, tokens["access_token"])
    assert await live(h, other["access_token"])  # another session of the same wallet lives on


async def test_revoking_the_refresh_token_kills_its_access_token(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet)
    rotated = (await refresh(h, tokens["refresh_token"])).json()
    revoked = await h.client.post(
        "/revoke", data={"token": rotated["refresh_token"], "client_id": "portcullis-demo"}
    )
    assert revoked.status_code == 200
    assert not await live(h, rotated["access_token"])
    assert not await live(h, tokens["access_token"])  # the whole session, older access tokens too


async def test_logged_out_access_token_is_dead(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet)
    assert await live(h, tokens["access_token"])
    reply = await h.client.get("/logout?" + urlencode({"id_token_hint": tokens["id_token"]}))
    assert reply.status_code == 200, reply.text
    assert not await live(h, tokens["access_token"])


async def test_access_token_of_a_family_ended_for_reuse_is_dead(h: Harness, wallet: Any) -> None:
    # The public demo client's refresh tokens are bearer tokens: any reuse ends the family (docs/CLIENTS.md).
    first = await sign_in(h, wallet)
    second = (await refresh(h, first["refresh_token"])).json()
    assert await live(h, second["access_token"])
    reuse = await refresh(h, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert not await live(h, second["access_token"])
    assert not await live(h, first["access_token"])


# -- the development chain: records and time on the embedded EVM ---------------------------------------------

BROKER_SECRET = dev.SECRET


@pytest.fixture
async def chain_h(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Harness]:
    broker = secret_client("broker", BROKER_SECRET, [dev.CB], "client_secret_post")
    clients = write_clients(tmp_path / "clients.json", [broker, backend()])
    settings = make_settings(tmp_path, database_url=sqlite_url, dev_chain=True, clients_file=clients)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


async def chain_tokens(h: Harness) -> dict[str, Any]:
    got = await authorize(dev.flow(h), dev.PROFESSIONAL, scope="openid")
    reply = await dev.flow(h).token(dev.exchange_form(got))
    assert reply.status_code == 200, reply.text
    tokens: dict[str, Any] = reply.json()
    return tokens


def mine(h: Harness) -> None:
    """One block stamped with the test clock's time: a transfer of nothing from a demo account."""
    w3 = dev.registry(h).w3
    sender = Account.from_key(DEV_ACCOUNTS[5].private_key)
    tx = {
        "from": sender.address,
        "to": sender.address,
        "value": 0,
        "gas": 21000,
        "gasPrice": w3.eth.gas_price,
        "nonce": w3.eth.get_transaction_count(sender.address),
        "chainId": dev.DEV_CHAIN,
    }
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    )


async def test_wallet_revoked_in_the_registry_is_dead(chain_h: Harness) -> None:
    tokens = await chain_tokens(chain_h)
    assert await live(chain_h, tokens["access_token"])
    dev.revoke(chain_h, dev.PROFESSIONAL.address)
    assert not await live(chain_h, tokens["access_token"])


async def test_record_past_valid_until_is_dead(chain_h: Harness) -> None:
    tokens = await chain_tokens(chain_h)
    # The officer shortens the record after the tokens were issued: it ends in 60 s (block time).
    held = dev.registry(chain_h).functions.getRecord(dev.PROFESSIONAL.address).call()
    ends = int(chain_h.clock.now().timestamp()) + 60
    update = (*held[:5], ends, held[9], held[10])
    dev.as_officer(
        chain_h,
        dev.registry(chain_h).functions.setRecord(dev.PROFESSIONAL.address, update),
        dev.PROFESSIONAL.address,
    )
    assert await live(chain_h, tokens["access_token"])
    chain_h.clock.advance(61)  # the access token (15 min) has not expired; the record has
    mine(chain_h)  # registry time is block time: a block after validUntil
    assert not await live(chain_h, tokens["access_token"])


# -- a real node: anvil, the registry CLI, the log follower ---------------------------------------------


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


async def test_registry_revocation_on_anvil(anvil: Anvil, tmp_path: Path, sqlite_url: str) -> None:
    admin, officer = anvil.accounts[0], anvil.accounts[1]
    contract = deploy(anvil.w3, "ComplianceRegistry", admin, sender=admin)
    for role in ("ATTESTER_ROLE", "REVOKER_ROLE"):
        send(contract.functions.grantRole(Web3.keccak(text=role), officer), admin)
    clients = write_clients(tmp_path / "clients.json", [backend()])
    chain = {"chain_id": 31337, "rpc_urls": [anvil.url], "registry": contract.address, "poll_seconds": 1.0}
    settings = make_settings(
        tmp_path,
        database_url=sqlite_url,
        chains=[chain],
        registry_key=anvil.private_keys[1],
        clients_file=clients,
    )
    wallet = Account.create()
    until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    grant = ["grant", wallet.address, "--residence", "DE", "--class", "professional", "--kyc-level", "2"]
    assert await registry_cli(settings, *grant, "--valid-until", until) == 0
    async with running_app(settings, FakeClock()) as h:
        tokens = await sign_in(h, wallet)
        assert await live(h, tokens["access_token"])
        assert await registry_cli(settings, "revoke", wallet.address, "--reason", "kyc-withdrawn") == 0
        started = time.monotonic()
        while await live(h, tokens["access_token"]):
            assert time.monotonic() - started < 10, "the revoked wallet's access token stayed live"
            await asyncio.sleep(0.1)
        assert not await live(h, tokens["access_token"])


async def test_token_past_its_claimed_valid_until_is_dead(h: Harness, wallet: Any) -> None:
    """The token's own ``compliance.valid_until`` binds even where its ``exp`` would outlive it (tokens this
    server mints cap ``exp`` there too; this one, signed by the server's key, does not)."""
    p = h.app.state.provider
    now = h.clock.now()
    grant = Grant(
        address=wallet.address,
        chain_id=1,
        client_id="portcullis-demo",
        scope="openid",
        auth_time=now,
        compliance={"source": "registry", "valid_until": int(now.timestamp()) + 30, "chain_id": 1},
    )
    token = mint_access_token(p.keys.ring, p.policy, grant, now, "jti-valid-until")
    assert await live(h, token)
    h.clock.advance(31)
    assert not await live(h, token)
