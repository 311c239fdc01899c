"""The code exchange asks the chain again (as every refresh does): a wallet whose registry record is revoked
between its sign-in on the hosted page and its client's code exchange gets no tokens. On the embedded
development chain, with the compliance key writing the revocation as `portcullis registry revoke` does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from eth_account import Account
from web3 import Web3

from app.chain import artifacts
from app.chain.devchain import DEV_ACCOUNTS, DevChainSyncProvider
from tests.audit.tamper import rows
from tests.conftest import FakeClock, Harness, make_settings, running_app
from tests.flow.client import Flow, authorize, secret_client, write_clients

ISSUER = "http://127.0.0.1:8000"
CB = "https://broker.example/cb"
SECRET = "a-long-client-secret-for-the-broker-0123456789"
PROFESSIONAL = Account.from_key(DEV_ACCOUNTS[2].private_key)
DEV_CHAIN = 31337


@pytest.fixture
async def h(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Harness]:
    broker = secret_client("broker", SECRET, [CB], "client_secret_post")
    clients = write_clients(tmp_path / "clients.json", [broker])
    settings = make_settings(tmp_path, database_url=sqlite_url, dev_chain=True, clients_file=clients)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


def flow(h: Harness) -> Flow:
    return Flow(h.client, ISSUER, "broker", CB, auth={"client_secret": SECRET})


def exchange_form(got: Any) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": got.code,
        "code_verifier": got.verifier,
        "redirect_uri": CB,
    }


def registry(h: Harness) -> Any:
    chain = h.app.state.dev_chain
    w3 = Web3(DevChainSyncProvider(chain))
    return w3.eth.contract(address=chain.registry_address, abi=artifacts.load("ComplianceRegistry")["abi"])


def as_officer(h: Harness, call: Any, address: str) -> None:
    """Send ``call`` with the compliance key (as `portcullis registry` does), then do what the log
    follower does when it sees the block (tests/chain/test_follower.py): forget the cached decision."""
    w3 = registry(h).w3
    officer = Account.from_key(DEV_ACCOUNTS[1].private_key)
    nonce = w3.eth.get_transaction_count(officer.address)
    tx = call.build_transaction({"from": officer.address, "nonce": nonce, "chainId": DEV_CHAIN})
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(officer.sign_transaction(tx).raw_transaction)
    )
    assert receipt["status"] == 1
    h.app.state.provider.chains.get(DEV_CHAIN).reader.invalidate(address)


def revoke(h: Harness, address: str) -> None:
    as_officer(h, registry(h).functions.revoke(address, b"\x07" * 32), address)


async def test_an_eligible_wallet_exchanges_its_code(h: Harness) -> None:
    got = await authorize(flow(h), PROFESSIONAL, scope="openid")
    reply = await flow(h).token(exchange_form(got))
    assert reply.status_code == 200, reply.text
    access = jwt.decode(reply.json()["access_token"], options={"verify_signature": False})
    assert access["sub"] == f"did:pkh:eip155:{DEV_CHAIN}:{PROFESSIONAL.address}"
    # openid alone asks for no compliance fact: the access token names only the decision it rests on
    # (tests/http/test_oidc_core_5_4_compliance_claim.py has the scopes that carry more)
    assert set(access["compliance"]) == {"source", "chain_id", "block"}
    assert access["compliance"]["source"] == "registry" and access["compliance"]["chain_id"] == DEV_CHAIN


async def test_a_wallet_revoked_before_the_exchange_gets_no_tokens(h: Harness) -> None:
    got = await authorize(flow(h), PROFESSIONAL, scope="openid")
    revoke(h, PROFESSIONAL.address)
    reply = await flow(h).token(exchange_form(got))
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["error"] == "invalid_grant" and "not eligible" in body["error_description"]
    assert "access_token" not in reply.text
    failed = [r for r in await rows(h.app.state.provider.store.engine) if r["type"] == "code.redeem_failed"]
    assert failed and "not eligible" in failed[-1]["data"]
    assert not [r for r in await rows(h.app.state.provider.store.engine) if r["type"] == "code.redeemed"]


async def test_a_record_shortened_before_the_exchange_shortens_the_tokens(h: Harness) -> None:
    got = await authorize(flow(h), PROFESSIONAL, scope="openid")
    held = registry(h).functions.getRecord(PROFESSIONAL.address).call()
    ends = int(h.clock.now().timestamp()) + 300
    # Record: residence, investorClass, kycLevel, amlRisk, flags, validUntil, verifiedAt, attester,
    # revokedAt, subjectId, evidenceRef, ...; RecordInput: the first six, then subjectId, evidenceRef
    update = (*held[:5], ends, held[9], held[10])
    as_officer(h, registry(h).functions.setRecord(PROFESSIONAL.address, update), PROFESSIONAL.address)
    reply = await flow(h).token(exchange_form(got))
    assert reply.status_code == 200, reply.text
    access = jwt.decode(reply.json()["access_token"], options={"verify_signature": False})
    assert access["exp"] <= ends and reply.json()["expires_in"] <= 300  # not the usual 15 minutes
