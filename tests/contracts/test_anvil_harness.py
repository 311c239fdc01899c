"""tests/anvil.py: start, accounts, chain control, failure reporting and clean shutdown."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from eth_account import Account

from tests.anvil import BIN_ENV, CHAIN_ID, Anvil, AnvilError, load_artifact


def test_dev_accounts_are_anvils_funded_accounts(chain: Anvil) -> None:
    assert chain.url.startswith("http://127.0.0.1:")
    assert chain.w3.eth.chain_id == CHAIN_ID
    assert chain.w3.eth.accounts == chain.accounts
    assert len(chain.accounts) == len(chain.private_keys) == 10
    for address, key in zip(chain.accounts, chain.private_keys, strict=True):
        assert Account.from_key(key).address == address
        assert chain.w3.eth.get_balance(address) > 0


def test_snapshot_revert_and_time(chain: Anvil) -> None:
    sender, receiver = chain.accounts[8], chain.accounts[9]
    before = chain.w3.eth.get_balance(receiver)
    snapshot = chain.snapshot()
    tx = chain.w3.eth.send_transaction({"from": sender, "to": receiver, "value": 10**18})
    chain.w3.eth.wait_for_transaction_receipt(tx)
    assert chain.w3.eth.get_balance(receiver) == before + 10**18
    chain.revert(snapshot)
    assert chain.w3.eth.get_balance(receiver) == before

    start = chain.timestamp()
    chain.increase_time(3600)
    assert chain.timestamp() >= start + 3600


def test_rpc_errors_raise(chain: Anvil) -> None:
    with pytest.raises(AnvilError, match="no_such_method"):
        chain.rpc("no_such_method")


def test_missing_binary_skips_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(BIN_ENV, str(tmp_path / "no-anvil-here"))
    with pytest.raises(pytest.skip.Exception, match="npm ci --prefix contracts"):
        Anvil().__enter__()


def test_a_binary_that_fails_is_reported_with_its_output(tmp_path: Path) -> None:
    fake = tmp_path / "anvil"
    fake.write_text("#!/bin/sh\necho 'boom: cannot bind' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(AnvilError, match="boom: cannot bind"), Anvil(binary=fake):
        pass


def test_the_process_is_gone_after_exit() -> None:
    with Anvil() as anvil:
        pid = anvil.pid
        assert pid is not None
        os.kill(pid, 0)  # alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert anvil.pid is None


def test_block_time_mines_without_transactions() -> None:
    with Anvil(block_time=0.5) as anvil:
        deadline = time.monotonic() + 10
        while anvil.w3.eth.block_number < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert anvil.w3.eth.block_number >= 2


def test_load_artifact() -> None:
    assert load_artifact("ComplianceRegistry")["contractName"] == "ComplianceRegistry"
    with pytest.raises(FileNotFoundError, match=r"build\.mjs"):
        load_artifact("NoSuchContract")
