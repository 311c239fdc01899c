"""JSON-RPC 2.0 envelope and method behaviour of DevChain.handle: batches, errors, reverts, time, raw txs."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3

from app.chain.devchain import COMPLIANCE, DEV_ACCOUNTS, DevChain, DevChainSyncProvider
from tests.chain_dev.conftest import rpc
from tests.conftest import FakeClock

IS_VERIFIED = keccak(text="isVerified(address)")[:4]
SET_RECORD = keccak(text="setRecord(address,(uint16,uint8,uint8,uint8,uint32,uint64,bytes32,bytes32))")[:4]
FRESH = "0x000000000000000000000000000000000000bEEF"


def set_record_data(account: str, valid_until: int) -> str:
    args = encode(
        ["address", "(uint16,uint8,uint8,uint8,uint32,uint64,bytes32,bytes32)"],
        [account, (250, 1, 2, 1, 0, valid_until, keccak(b"s"), keccak(b"e"))],
    )
    return "0x" + (SET_RECORD + args).hex()


def is_verified_data(account: str) -> str:
    return "0x" + (IS_VERIFIED + encode(["address"], [account])).hex()


async def send_raw(chain: DevChain, tx: dict[str, Any], key: str = COMPLIANCE.private_key) -> dict[str, Any]:
    signed = Account.sign_transaction(tx, key)
    return await rpc(chain, "eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())


async def next_nonce(chain: DevChain, address: str = COMPLIANCE.address) -> int:
    return int((await rpc(chain, "eth_getTransactionCount", address, "pending"))["result"], 16)


def dynamic_tx(chain: DevChain, nonce: int, data: str, **overrides: Any) -> dict[str, Any]:
    return {
        "chainId": 31337,
        "nonce": nonce,
        "to": chain.registry_address,
        "data": data,
        "gas": 500_000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 10**9,
        **overrides,
    }


async def test_batch_keeps_order_and_reports_each_error(chain: DevChain) -> None:
    response = await chain.handle(
        [
            {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_nope", "params": []},
            {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": ["0x1234"]},
            {"jsonrpc": "2.0", "method": "eth_blockNumber", "params": []},  # notification: no answer
            "not a request",
            {"jsonrpc": "2.0", "id": 5, "method": "eth_blockNumber"},
        ]
    )
    assert isinstance(response, list)
    assert [r["id"] for r in response] == ["a", 2, 3, None, 5]
    assert response[0]["result"] == "0x7a69"
    assert response[1]["error"]["code"] == -32601
    assert response[2]["error"]["code"] == -32602
    assert response[3]["error"]["code"] == -32600
    assert response[4]["result"] == "0x1"


async def test_protocol_errors(chain: DevChain) -> None:
    assert (await rpc(chain, "eth_unknownMethod"))["error"]["code"] == -32601
    assert (await chain.handle([])) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "empty batch"},
    }
    for bad in (
        {"jsonrpc": "1.0", "id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 1, "method": 7},
        {"jsonrpc": "2.0", "id": [1], "method": "eth_chainId"},
        42,
    ):
        answer = await chain.handle(bad)
        assert isinstance(answer, dict) and answer["error"]["code"] == -32600
    named = await chain.handle({"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": {"a": 1}})
    assert isinstance(named, dict) and named["error"]["code"] == -32602
    assert (await rpc(chain, "eth_chainId", 1))["error"]["code"] == -32602  # too many arguments
    assert (await rpc(chain, "eth_getBalance", "0xzz", "latest"))["error"]["code"] == -32602
    assert (await rpc(chain, "eth_getBalance", COMPLIANCE.address, "0x99"))["error"]["code"] == -32000
    assert (await rpc(chain, "eth_getBlockByNumber", "0x99", False))["result"] is None
    assert (await rpc(chain, "eth_getTransactionReceipt", "0x" + "00" * 32))["result"] is None
    assert await chain.handle({"jsonrpc": "2.0", "method": "eth_chainId"}) is None  # a lone notification


async def test_revert_is_code_3_with_data(chain: DevChain) -> None:
    outsider = DEV_ACCOUNTS[5].address
    call = {
        "from": outsider,
        "to": chain.registry_address,
        "data": set_record_data(FRESH, int(time.time()) + 60),
    }
    for method in ("eth_call", "eth_estimateGas"):
        error = (await rpc(chain, method, call, "latest"))["error"]
        assert error["code"] == 3
        assert error["message"] == "execution reverted"
        selector = keccak(text="AccessControlUnauthorizedAccount(address,bytes32)")[:4]
        assert error["data"].startswith("0x" + selector.hex())


async def test_raw_transactions_mine_at_wall_clock_time(chain: DevChain) -> None:
    nonce = await next_nonce(chain)
    assert nonce == 1  # the compliance key wrote the seed records with nonce 0
    answer = await send_raw(chain, dynamic_tx(chain, nonce, set_record_data(FRESH, int(time.time()) + 60)))
    receipt = (await rpc(chain, "eth_getTransactionReceipt", answer["result"]))["result"]
    assert receipt["status"] == "0x1" and receipt["blockNumber"] == "0x2"
    block = (await rpc(chain, "eth_getBlockByNumber", "latest", True))["result"]
    assert abs(int(block["timestamp"], 16) - time.time()) < 5
    assert block["transactions"][0]["hash"] == answer["result"]
    verified = await rpc(chain, "eth_call", {"to": chain.registry_address, "data": is_verified_data(FRESH)})
    assert int(verified["result"], 16) == 1
    # Block tags: the state before the write (block 1) has no record for FRESH.
    before = await rpc(
        chain, "eth_call", {"to": chain.registry_address, "data": is_verified_data(FRESH)}, "0x1"
    )
    assert int(before["result"], 16) == 0


async def test_rejected_transactions(chain: DevChain) -> None:
    data = set_record_data(FRESH, int(time.time()) + 60)
    nonce = await next_nonce(chain)
    wrong_chain = await send_raw(chain, dynamic_tx(chain, nonce, data, chainId=1))
    assert wrong_chain["error"]["code"] == -32000 and "chain id" in wrong_chain["error"]["message"]
    assert (await send_raw(chain, dynamic_tx(chain, nonce + 5, data)))["error"]["code"] == -32000  # nonce gap
    assert (await rpc(chain, "eth_sendRawTransaction", "0x02c0"))["error"]["code"] == -32602
    assert (await rpc(chain, "eth_blockNumber"))["result"] == "0x1"  # nothing was mined
    ok = await send_raw(chain, dynamic_tx(chain, nonce, data))
    assert "result" in ok
    again = await send_raw(chain, dynamic_tx(chain, nonce, data))  # replay: nonce too low
    assert again["error"]["code"] == -32000
    unknown = await rpc(chain, "eth_sendTransaction", {"from": FRESH, "to": FRESH, "value": "0x1"})
    assert unknown["error"]["code"] == -32000


async def test_calls_see_the_clock_and_blocks_follow_it() -> None:
    clock = FakeClock()
    chain = DevChain(clock=clock)
    start = int(clock.now().timestamp())
    admin = DEV_ACCOUNTS[0].address
    sent = await rpc(
        chain,
        "eth_sendTransaction",
        {
            "from": COMPLIANCE.address,
            "to": chain.registry_address,
            "data": set_record_data(FRESH, start + 60),
        },
    )
    assert "result" in sent
    latest = (await rpc(chain, "eth_getBlockByNumber", "latest", False))["result"]
    assert int(latest["timestamp"], 16) == start + 1  # block 1 took `start`; blocks strictly increase
    is_verified = {"to": chain.registry_address, "data": is_verified_data(FRESH)}
    assert int((await rpc(chain, "eth_call", is_verified))["result"], 16) == 1

    clock.advance(timedelta(minutes=2).total_seconds())
    # No block since, yet a call at latest runs in the next block at the time now: the record has expired.
    assert int((await rpc(chain, "eth_call", is_verified, "latest"))["result"], 16) == 0
    # At the block it was written in, the record is still valid (that block's own time).
    assert int((await rpc(chain, "eth_call", is_verified, latest["number"]))["result"], 16) == 1
    transfer = await rpc(chain, "eth_sendTransaction", {"from": admin, "to": FRESH, "value": "0x1"})
    receipt = (await rpc(chain, "eth_getTransactionReceipt", transfer["result"]))["result"]
    block = (await rpc(chain, "eth_getBlockByHash", receipt["blockHash"], False))["result"]
    assert int(block["timestamp"], 16) == start + 120


async def test_logs_filters(chain: DevChain) -> None:
    everything = (await rpc(chain, "eth_getLogs", {"fromBlock": "earliest"}))["result"]
    assert len(everything) == 7  # RoleGranted x4 (admin + three roles for #1), RecordSet x3
    assert [int(log["logIndex"], 16) for log in everything] == list(range(7))
    role_granted = keccak(text="RoleGranted(bytes32,address,address)")
    to_compliance = "0x" + "00" * 12 + COMPLIANCE.address[2:].lower()
    granted = await rpc(
        chain, "eth_getLogs", {"fromBlock": "0x0", "topics": ["0x" + role_granted.hex(), None, to_compliance]}
    )
    assert len(granted["result"]) == 3
    either = await rpc(chain, "eth_getLogs", {"fromBlock": "0x0", "address": [FRESH, chain.registry_address]})
    assert len(either["result"]) == 7
    assert (await rpc(chain, "eth_getLogs", {"fromBlock": "0x0", "address": FRESH}))["result"] == []
    by_hash = await rpc(chain, "eth_getLogs", {"blockHash": everything[0]["blockHash"]})
    assert len(by_hash["result"]) == 7
    bad = await rpc(chain, "eth_getLogs", {"blockHash": everything[0]["blockHash"], "fromBlock": "0x0"})
    assert bad["error"]["code"] == -32602


async def test_concurrent_requests_are_serialised(chain: DevChain) -> None:
    # Forty writes from one unlocked account at once: each gets its own nonce and its own block.
    admin = DEV_ACCOUNTS[0].address
    answers = await asyncio.gather(
        *(rpc(chain, "eth_sendTransaction", {"from": admin, "to": FRESH, "value": "0x1"}) for _ in range(40))
    )
    assert all("result" in answer for answer in answers)
    assert (await rpc(chain, "eth_blockNumber"))["result"] == hex(41)
    assert int((await rpc(chain, "eth_getBalance", FRESH, "latest"))["result"], 16) == 40


def test_sync_provider_and_method_coverage(chain: DevChain) -> None:
    w3 = Web3(DevChainSyncProvider(chain))
    assert w3.eth.chain_id == 31337
    assert w3.eth.block_number == 1
    assert w3.eth.get_transaction_count(COMPLIANCE.address) == 1
    assert w3.client_version.startswith("portcullis-devchain/py-evm-")
    wanted = {
        "eth_chainId", "net_version", "eth_blockNumber", "eth_getBlockByNumber", "eth_getBlockByHash",
        "eth_call", "eth_estimateGas", "eth_gasPrice", "eth_maxPriorityFeePerGas", "eth_feeHistory",
        "eth_getTransactionCount", "eth_getBalance", "eth_getCode", "eth_sendRawTransaction",
        "eth_sendTransaction", "eth_getTransactionReceipt", "eth_getTransactionByHash", "eth_getLogs",
        "web3_clientVersion",
    }  # fmt: skip
    assert wanted <= chain.methods


async def test_cancun_opcodes(chain: DevChain) -> None:
    # Init code run by eth_call (no "to"): TSTORE 42, TLOAD it, MCOPY it one word up, BLOBBASEFEE, return it.
    code = "0x" + "602a60005d" + "60005c600052" + "6020600060205e" + "4a50" + "60206020f3"
    answer = await rpc(chain, "eth_call", {"data": code})
    assert int(answer["result"], 16) == 42


async def test_reverting_transaction_is_mined_with_status_0(chain: DevChain) -> None:
    outsider = DEV_ACCOUNTS[5]
    tx = dynamic_tx(chain, 0, set_record_data(FRESH, int(time.time()) + 60), gas=300_000)
    answer = await send_raw(chain, tx, outsider.private_key)
    receipt = (await rpc(chain, "eth_getTransactionReceipt", answer["result"]))["result"]
    assert receipt["status"] == "0x0" and receipt["logs"] == []
    assert int(receipt["gasUsed"], 16) < 300_000


async def test_legacy_and_unprotected_transactions(chain: DevChain) -> None:
    admin = DEV_ACCOUNTS[0]
    base = {"to": FRESH, "value": 5, "gas": 21_000, "gasPrice": 2 * 10**9}
    nonce = await next_nonce(chain, admin.address)
    assert nonce == 4  # deployment and three grantRole calls
    protected = await send_raw(chain, {**base, "nonce": nonce, "chainId": 31337}, admin.private_key)
    unprotected = await send_raw(
        chain, {**base, "nonce": nonce + 1}, admin.private_key
    )  # pre-EIP-155, like anvil
    for answer in (protected, unprotected):
        tx = (await rpc(chain, "eth_getTransactionByHash", answer["result"]))["result"]
        assert tx["type"] == "0x0" and tx["from"] == admin.address.lower()
    assert int((await rpc(chain, "eth_getBalance", FRESH))["result"], 16) == 10
