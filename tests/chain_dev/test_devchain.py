"""The development chain through web3.py 8, in process and over HTTP: set-up, reads, writes, reverts, time."""

from __future__ import annotations

import time
from typing import Any

import pytest
from eth_abi.abi import decode
from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.exceptions import ContractCustomError

from app.chain.devchain import (
    ADMIN,
    COMPLIANCE,
    DEV_ACCOUNTS,
    DEV_CHAIN_ID,
    DEV_MNEMONIC,
    DevChain,
)

RETAIL_DERIVATIVES = (0x02, 0x01, 1, 2, 2)  # requiredFlags, forbiddenFlags, minClass, minKyc, maxAml
FRESH = to_checksum_address("0x000000000000000000000000000000000000dead")


def record_input(valid_until: int, flags: int = 0x02) -> tuple[Any, ...]:
    return (276, 2, 2, 1, flags, valid_until, keccak(b"subject"), keccak(b"evidence"))


def test_accounts_are_the_development_mnemonic() -> None:
    seed = seed_from_mnemonic(DEV_MNEMONIC, "")
    for account in DEV_ACCOUNTS:
        key = key_from_seed(seed, f"m/44'/60'/0'/0/{account.index}")
        assert "0x" + key.hex() == account.private_key
        assert Account.from_key(key).address == account.address
    assert ADMIN.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert COMPLIANCE.address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


async def test_chain_id_and_funded_accounts(w3: AsyncWeb3[Any], chain: DevChain) -> None:
    assert await w3.eth.chain_id == DEV_CHAIN_ID == chain.chain_id
    assert await w3.net.version == str(DEV_CHAIN_ID)
    assert await w3.is_connected()
    for account in DEV_ACCOUNTS:
        assert await w3.eth.get_balance(account.address) > 9_999 * 10**18
    assert len(await w3.eth.get_code(chain.registry_address)) > 1000


async def test_roles_and_seeded_records(registry: AsyncContract) -> None:
    f = registry.functions
    admin_role, attester, revoker, pauser = (
        await f.DEFAULT_ADMIN_ROLE().call(),
        await f.ATTESTER_ROLE().call(),
        await f.REVOKER_ROLE().call(),
        await f.PAUSER_ROLE().call(),
    )
    assert await f.hasRole(admin_role, ADMIN.address).call()
    for role in (attester, revoker, pauser):
        assert await f.hasRole(role, COMPLIANCE.address).call()
        assert not await f.hasRole(role, ADMIN.address).call()

    professional_de, retail_fr, us_person = DEV_ACCOUNTS[2], DEV_ACCOUNTS[3], DEV_ACCOUNTS[4]
    record = await f.getRecord(professional_de.address).call()
    assert record[:5] == (276, 2, 2, 1, 0x02)  # residence, class, kyc, aml, flags
    assert record[5] > time.time() + 300 * 86400  # validUntil about a year out
    assert record[7] == COMPLIANCE.address  # attester
    assert (await f.getRecord(retail_fr.address).call())[:2] == (250, 1)
    assert (await f.getRecord(us_person.address).call())[4] & 0x01  # US person
    for account in (professional_de, retail_fr, us_person):
        assert await f.isVerified(account.address).call()
    assert not await f.isVerified(DEV_ACCOUNTS[5].address).call()
    # Under retail derivatives requirements only the professional from Germany is eligible.
    eligible = [await f.isEligible(a.address, RETAIL_DERIVATIVES).call() for a in DEV_ACCOUNTS[2:5]]
    assert eligible == [True, False, False]
    assert await f.revision().call() == 3


async def test_signed_set_record_mines_and_emits_record_set(
    w3: AsyncWeb3[Any], registry: AsyncContract
) -> None:
    compliance = Account.from_key(COMPLIANCE.private_key)
    valid_until = int(time.time()) + 60
    tx = await registry.functions.setRecord(FRESH, record_input(valid_until)).build_transaction(
        {"from": compliance.address, "nonce": await w3.eth.get_transaction_count(compliance.address)}
    )
    assert tx["chainId"] == DEV_CHAIN_ID
    signed = compliance.sign_transaction(tx)
    tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt["status"] == 1
    assert receipt["gasUsed"] <= tx["gas"]

    block = await w3.eth.get_block(receipt["blockNumber"])
    assert abs(block["timestamp"] - time.time()) < 5  # new blocks carry the wall-clock time
    assert await registry.functions.isVerified(FRESH).call()  # validUntil = now + 60 s

    account_topic = b"\x00" * 12 + bytes.fromhex(FRESH[2:])
    logs = await w3.eth.get_logs(
        {
            "address": registry.address,
            "fromBlock": 0,
            "toBlock": "latest",
            "topics": [registry.events.RecordSet.topic, "0x" + account_topic.hex()],
        }
    )
    assert len(logs) == 1
    event = registry.events.RecordSet().process_log(logs[0])
    assert event["args"]["account"] == FRESH
    assert event["args"]["attester"] == compliance.address
    assert event["args"]["record"]["validUntil"] == valid_until
    assert event["transactionHash"] == tx_hash
    # The seeded accounts' RecordSet events are there too, each under its own account topic.
    seeded = await w3.eth.get_logs(
        {"address": registry.address, "fromBlock": 0, "topics": [registry.events.RecordSet.topic]}
    )
    assert len(seeded) == 4
    # logIndex counts across the block: the constructor's and three grantRole RoleGranted events come first.
    assert [log["logIndex"] for log in seeded[:3]] == [4, 5, 6]


async def test_revert_carries_custom_error_data(w3: AsyncWeb3[Any], registry: AsyncContract) -> None:
    outsider = DEV_ACCOUNTS[5].address
    call = registry.functions.setRecord(FRESH, record_input(int(time.time()) + 60))
    attester_role = await registry.functions.ATTESTER_ROLE().call()
    for attempt in (call.call({"from": outsider}), call.estimate_gas({"from": outsider})):
        with pytest.raises(ContractCustomError) as caught:
            await attempt
        data = bytes.fromhex(str(caught.value.data)[2:])
        assert data[:4] == keccak(text="AccessControlUnauthorizedAccount(address,bytes32)")[:4]
        account, role = decode(["address", "bytes32"], data[4:])
        assert (account.lower(), role) == (outsider.lower(), attester_role)


async def test_unlocked_send_transaction_and_fee_methods(w3: AsyncWeb3[Any], registry: AsyncContract) -> None:
    gas = await registry.functions.setRecord(FRESH, record_input(int(time.time()) + 3600)).estimate_gas(
        {"from": COMPLIANCE.address}
    )
    # The estimate is enough as the gas limit, and eth_sendTransaction signs for the unlocked dev accounts.
    tx_hash = await registry.functions.setRecord(FRESH, record_input(int(time.time()) + 3600)).transact(
        {"from": COMPLIANCE.address, "gas": gas}
    )
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt["status"] == 1
    tx = await w3.eth.get_transaction(tx_hash)
    assert tx["from"] == COMPLIANCE.address and tx["blockNumber"] == receipt["blockNumber"]
    assert (await w3.eth.get_block(receipt["blockHash"]))["number"] == receipt["blockNumber"]
    history = await w3.eth.fee_history(2, "latest", [25, 75])
    assert len(history["baseFeePerGas"]) == 3 and len(history["reward"]) == 2
    assert await w3.eth.gas_price > 0
    assert await w3.eth.max_priority_fee > 0


async def test_web3_batch_requests(w3: AsyncWeb3[Any], chain: DevChain) -> None:
    async with w3.batch_requests() as batch:
        batch.add(w3.eth.get_block("latest"))
        batch.add(w3.eth.get_balance(ADMIN.address))
        batch.add(w3.eth.get_code(chain.registry_address))
        block, balance, code = await batch.async_execute()
    assert block["number"] == 1 and balance > 0 and len(code) > 0  # type: ignore[operator,typeddict-item]
