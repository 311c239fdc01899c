"""A revocation on the embedded development chain, as a development server's follower records it: the
chain.change entry names the receipt's transaction, log and block, the compliance key as signer, the record
fields that changed and the reason text (docs/AUDIT.md, "chain.change entries")."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import AsyncWeb3

from app.chain import artifacts
from app.chain.devchain import COMPLIANCE, DEV_ACCOUNTS, DevChain, DevChainProvider
from tests.audit.tamper import rows
from tests.conftest import FakeClock, make_settings, running_app


async def test_a_dev_chain_revocation_is_audited_with_its_transaction_and_reason(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url, dev_chain=True)
    wallet = DEV_ACCOUNTS[2].address  # the seeded professional investor from Germany
    async with running_app(settings, FakeClock()) as h:
        chain: DevChain = h.app.state.dev_chain
        w3: AsyncWeb3[Any] = AsyncWeb3(DevChainProvider(chain))
        abi = artifacts.load("ComplianceRegistry")["abi"]
        registry = w3.eth.contract(address=chain.registry_address, abi=abi)
        await asyncio.sleep(1.5)  # the follower takes the head as its first cursor
        officer = Account.from_key(COMPLIANCE.private_key)
        tx = await registry.functions.revoke(wallet, b"dev-case-7".ljust(32, b"\x00")).build_transaction(
            {"from": officer.address, "nonce": await w3.eth.get_transaction_count(officer.address)}
        )
        sent = await w3.eth.send_raw_transaction(officer.sign_transaction(tx).raw_transaction)
        receipt = await w3.eth.wait_for_transaction_receipt(sent, timeout=10)
        engine = h.app.state.provider.store.engine
        deadline = time.monotonic() + 10
        while not (found := [r for r in await rows(engine) if r["type"] == "chain.change"]):
            assert time.monotonic() < deadline, "no chain.change entry"
            await asyncio.sleep(0.1)
        block = await w3.eth.get_block(receipt["blockNumber"])
    (entry,) = found
    data = json.loads(entry["data"])
    assert entry["reason"] == "RecordRevoked" and entry["actor"] == f"did:pkh:eip155:31337:{wallet}"
    assert data["tx_hash"] == "0x" + bytes(receipt["transactionHash"]).hex()
    assert data["log_index"] == receipt["logs"][0]["logIndex"]
    assert data["block"] == receipt["blockNumber"]
    assert data["block_hash"] == "0x" + bytes(receipt["blockHash"]).hex()
    assert data["contract"] == chain.registry_address and data["subject"] == wallet
    assert data["signer"] == COMPLIANCE.address and data["signer_from"] == "event"
    assert data["reason"] == "dev-case-7"
    assert data["old"] == {"revoked_at": 0, "revocation_reason": None}
    assert data["new"] == {"revoked_at": block["timestamp"], "revocation_reason": "dev-case-7"}
