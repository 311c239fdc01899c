"""``chain.change`` entries a regulator can use, on a real anvil with the ComplianceRegistry: each names the
transaction, log index, block hash, contract, signer (the compliance officer), subject, the record fields
that changed and the reason given on chain; and with several replicas following the same chain (two apps on
one SQLite file, two real ``portcullis serve`` processes on one PostgreSQL database) each on-chain event is
written once (docs/AUDIT.md, "chain.change")."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy.ext.asyncio import AsyncEngine
from web3 import Web3

from app.storage.db import create_engine
from tests.anvil import Anvil, contract_at, send
from tests.audit.tamper import rows
from tests.conftest import TEST_SECRET, FakeClock, make_settings, postgres_database, running_app
from tests.integration.server import ServerProcess

ANVIL_PORT = 18102
SERVER_PORTS = (18100, 18101)
POLL = 0.2
DE, FR = 276, 250


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    with Anvil(port=ANVIL_PORT) as anvil:
        yield anvil


def chains(chain: Anvil, registry: str) -> list[dict[str, Any]]:
    return [{"chain_id": 31337, "rpc_urls": [chain.url], "registry": registry, "poll_seconds": POLL}]


def record_input(chain: Anvil, residence: int = DE, investor_class: int = 2) -> tuple[Any, ...]:
    valid_until = chain.timestamp() + 30 * 86400
    return (residence, investor_class, 2, 1, 0, valid_until, b"\x11" * 32, b"\x22" * 32)


def hexstr(value: Any) -> str:
    return "0x" + bytes(value).hex()


async def chain_changes(engine: AsyncEngine, count: int, seconds: float = 15) -> list[dict[str, Any]]:
    """The chain.change entries once there are at least ``count`` (their data decoded)."""
    deadline = time.monotonic() + seconds
    while True:
        found = [
            {**r, "data": json.loads(r["data"])} for r in await rows(engine) if r["type"] == "chain.change"
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_entries_carry_the_transaction_signer_fields_and_reason(
    chain: Anvil, registry: str, tmp_path: Path, sqlite_url: str
) -> None:
    officer = chain.accounts[1]
    contract = contract_at(chain.w3, "ComplianceRegistry", registry)
    wallet = Account.create().address
    settings = make_settings(tmp_path, database_url=sqlite_url, chains=chains(chain, registry))
    async with running_app(settings, FakeClock()) as h:
        engine = h.app.state.provider.store.engine
        await asyncio.sleep(3 * POLL)  # the follower starts at the head: let it take its first cursor
        granted = send(contract.functions.setRecord(wallet, record_input(chain)), officer)
        changed = send(contract.functions.setRecord(wallet, record_input(chain, FR, 3)), officer)
        revoked = send(contract.functions.revoke(wallet, b"kyc-withdrawn".ljust(32, b"\x00")), officer)
        raw = b"\xff\x00\x01" + b"\x00" * 29
        frozen = send(contract.functions.freeze(wallet, raw), officer)
        entries = await chain_changes(engine, 4)
        log = await rows(engine)

    assert [e["reason"] for e in entries] == ["RecordSet", "RecordSet", "RecordRevoked", "RecordFrozen"]
    for entry, receipt in zip(entries, (granted, changed, revoked, frozen), strict=True):
        data = entry["data"]
        (event_log,) = receipt["logs"]
        assert data["tx_hash"] == hexstr(receipt["transactionHash"])
        assert data["log_index"] == event_log["logIndex"]
        assert data["block"] == receipt["blockNumber"]
        assert data["block_hash"] == hexstr(receipt["blockHash"])
        assert data["contract"] == Web3.to_checksum_address(registry)
        assert data["chain_id"] == 31337
        assert data["signer"] == officer and data["signer_from"] == "event"
        assert data["subject"] == wallet and entry["actor"] == f"did:pkh:eip155:31337:{wallet}"
        assert "unread" not in data

    first, second, revocation, freeze = (e["data"] for e in entries)
    assert first["old"]["residence"] is None and first["new"]["residence"] == "DE"
    assert first["new"]["investor_class"] == "professional" and first["new"]["attester"] == officer
    assert first["new"]["subject_id"] == "0x" + "11" * 32
    assert second["old"]["residence"] == "DE" and second["new"]["residence"] == "FR"
    assert second["old"]["investor_class"] == "professional"
    assert second["new"]["investor_class"] == "eligible_counterparty"
    assert "kyc_level" not in second["new"] and "subject_id" not in second["old"]  # only what changed
    assert revocation["reason"] == "kyc-withdrawn"
    revoked_at = chain.w3.eth.get_block(revoked["blockNumber"])["timestamp"]
    assert revocation["old"] == {"revoked_at": 0, "revocation_reason": None}
    assert revocation["new"] == {"revoked_at": revoked_at, "revocation_reason": "kyc-withdrawn"}
    assert freeze["reason"] == "0x" + raw.hex()  # not printable UTF-8: hex
    assert freeze["old"] == {"flags": []} and freeze["new"] == {"flags": ["frozen"]}
    assert {"token.subject_revoked"} <= {r["type"] for r in log}
    assert all(TEST_SECRET not in r["data"] and chain.private_keys[1][2:] not in r["data"] for r in log)


async def test_two_apps_on_one_sqlite_file_write_each_event_once(
    chain: Anvil, registry: str, tmp_path: Path, sqlite_url: str
) -> None:
    officer = chain.accounts[1]
    contract = contract_at(chain.w3, "ComplianceRegistry", registry)
    wallet = Account.create().address
    settings = make_settings(tmp_path, database_url=sqlite_url, chains=chains(chain, registry))
    async with running_app(settings, FakeClock()) as a, running_app(settings, FakeClock()) as b:
        assert a.app.state.provider is not b.app.state.provider
        await asyncio.sleep(3 * POLL)
        send(contract.functions.setRecord(wallet, record_input(chain)), officer)
        send(contract.functions.revoke(wallet, b"sanctions-hit".ljust(32, b"\x00")), officer)
        engine = a.app.state.provider.store.engine
        await chain_changes(engine, 2)
        await asyncio.sleep(10 * POLL)  # both followers have long read both blocks
        log = await rows(engine)
    assert_once(log, wallet)


def assert_once(log: list[dict[str, Any]], wallet: str) -> None:
    """One chain.change per event, and sessions ended at most once per event (not once per replica).

    The RecordSet may itself end sessions: a replica that reads the wallet after the revocation was mined
    finds it ineligible already."""
    mine = [r for r in log if r["actor"] == f"did:pkh:eip155:31337:{wallet}"]
    changes = [r for r in mine if r["type"] == "chain.change"]
    assert [r["reason"] for r in changes] == ["RecordSet", "RecordRevoked"]
    keys = [(json.loads(r["data"])["tx_hash"], json.loads(r["data"])["log_index"]) for r in changes]
    assert len(set(keys)) == 2
    ended = [json.loads(r["data"])["event"] for r in mine if r["type"] == "token.subject_revoked"]
    assert "RecordRevoked" in ended and len(ended) == len(set(ended))


async def test_two_server_processes_on_postgresql_write_one_entry_per_event(
    chain: Anvil, registry: str, tmp_path: Path
) -> None:
    officer = chain.accounts[1]
    contract = contract_at(chain.w3, "ComplianceRegistry", registry)
    wallet = Account.create().address
    async with postgres_database() as url:
        env = {
            "PORTCULLIS_DATABASE_URL": url,
            "PORTCULLIS_DEV_CHAIN": "false",
            "PORTCULLIS_CHAINS": json.dumps(chains(chain, registry)),
        }
        engine = create_engine(url)
        try:
            with (
                ServerProcess(tmp_path, port=SERVER_PORTS[0], **env) as first,
                ServerProcess(tmp_path, port=SERVER_PORTS[1], **env),
            ):
                await asyncio.sleep(1.0)  # both followers have taken their first cursor
                send(contract.functions.setRecord(wallet, record_input(chain)), officer)
                receipt = send(
                    contract.functions.revoke(wallet, b"kyc-withdrawn".ljust(32, b"\x00")), officer
                )
                await chain_changes(engine, 2)
                await asyncio.sleep(3.0)  # 15 polls: the second replica has read both blocks too
                log = await rows(engine)
            verified = first.portcullis("audit", "verify")
        finally:
            await engine.dispose()
    assert_once(log, wallet)
    revocation = [r for r in log if r["type"] == "chain.change" and r["reason"] == "RecordRevoked"]
    assert json.loads(revocation[-1]["data"])["tx_hash"] == hexstr(receipt["transactionHash"])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit log OK" in verified.stdout
