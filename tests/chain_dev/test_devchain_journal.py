"""The development chain's journal (app/chain/devchain_journal.py): a restart rebuilds the same chain, block
for block, with the times it was mined at; a damaged file is one line saying what to do."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from app.chain import artifacts
from app.chain.devchain import DEV_ACCOUNTS, DevChain, DevChainSyncProvider, open_dev_chain
from app.chain.devchain_journal import JournalBusy, JournalError, journal_path
from tests.conftest import FakeClock

OUTSIDER = DEV_ACCOUNTS[7].address
UNTIL = int(time.time()) + 30 * 86400
RECORD = (276, 2, 2, 1, 2, UNTIL, b"\x11" * 32, b"\x22" * 32)  # DE, professional, kyc 2, aml 1, flags 0x02


def registry(chain: DevChain) -> Any:
    w3 = Web3(DevChainSyncProvider(chain))
    return w3.eth.contract(address=chain.registry_address, abi=artifacts.load("ComplianceRegistry")["abi"])


def grant(chain: DevChain, account: str) -> None:
    contract = registry(chain)
    tx = contract.functions.setRecord(account, RECORD).transact({"from": DEV_ACCOUNTS[1].address})
    assert contract.w3.eth.get_transaction_receipt(tx)["status"] == 1


def head(chain: DevChain) -> Any:
    return Web3(DevChainSyncProvider(chain)).eth.get_block("latest")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_a_restart_rebuilds_the_same_chain_with_its_times(tmp_path: Path) -> None:
    clock = FakeClock()
    first = open_dev_chain(tmp_path, clock=clock)
    assert first.restored_blocks == 0
    clock.advance(10)
    grant(first, OUTSIDER)
    before = head(first)
    first.close()

    clock.advance(3600)  # the server is down for an hour
    again = open_dev_chain(tmp_path, clock=clock)
    assert again.restored_blocks == 2  # the set-up block and the grant
    after = head(again)
    assert (after.number, after.hash, after.timestamp) == (before.number, before.hash, before.timestamp)
    assert registry(again).functions.isVerified(OUTSIDER).call()
    # The demo records keep the validUntil of the chain's creation, not of this start.
    genesis = Web3(DevChainSyncProvider(again)).eth.get_block(0)
    demo = registry(again).functions.getRecord(DEV_ACCOUNTS[2].address).call()
    assert demo[5] == genesis.timestamp + 1 + 365 * 86400

    # The time model holds across the restart: the next block carries the time now.
    grant(again, DEV_ACCOUNTS[8].address)
    assert head(again).timestamp == int(clock.now().timestamp())
    again.close()
    assert len(lines(journal_path(tmp_path))) == 1 + 3  # header and three blocks


def test_a_clock_behind_the_journal_still_moves_blocks_forward(tmp_path: Path) -> None:
    clock = FakeClock()
    first = open_dev_chain(tmp_path, clock=clock)
    grant(first, OUTSIDER)
    last = head(first).timestamp
    first.close()
    clock.advance(-600)  # the machine's clock was set back
    again = open_dev_chain(tmp_path, clock=clock)
    grant(again, DEV_ACCOUNTS[8].address)
    assert head(again).timestamp == last + 1
    again.close()


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first = open_dev_chain(tmp_path)
    with pytest.raises(JournalBusy, match="in use by another process"):
        open_dev_chain(tmp_path)
    first.close()
    open_dev_chain(tmp_path).close()  # released


def _damage(tmp_path: Path, edit: Any) -> None:
    chain = open_dev_chain(tmp_path)
    grant(chain, OUTSIDER)
    chain.close()
    path = journal_path(tmp_path)
    path.write_text(edit(path.read_text()))


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda text: text.replace('"number":2', '"number":"2"'), "line 3 (bad block field"),
        (lambda text: text.replace("\n", "\n}garbage{\n", 1), "line 2 (not JSON)"),
        (lambda text: text.replace('"format":"portcullis-devchain-journal/1"', '"format":"x"'), "line 1"),
        (lambda text: text.replace('"number":2,"timestamp":', '"number":2,"timestamp":1'), "does not replay"),
        (lambda text: text.replace('code_sha256":"', 'code_sha256":"00'), "another build"),
    ],
    ids=["bad-field", "not-json", "not-a-journal", "edited-block", "other-contract-build"],
)
def test_a_damaged_journal_is_one_line_saying_what_to_do(tmp_path: Path, edit: Any, why: str) -> None:
    _damage(tmp_path, edit)
    with pytest.raises(JournalError) as caught:
        open_dev_chain(tmp_path)
    message = str(caught.value)
    assert why in message and "\n" not in message
    assert str(journal_path(tmp_path)) in message and "`portcullis dev reset`" in message
    # The failed start released the file: a reset (or a fixed file) can follow without a stale lock.
    journal_path(tmp_path).unlink()
    open_dev_chain(tmp_path).close()


def test_a_last_line_cut_short_by_a_crash_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chain = open_dev_chain(tmp_path)
    grant(chain, OUTSIDER)
    chain.close()
    path = journal_path(tmp_path)
    whole = path.read_text()
    path.write_text(whole + whole.splitlines()[-1][:40])  # a crash in the middle of the next write
    with caplog.at_level(logging.WARNING, "portcullis.devchain"):
        again = open_dev_chain(tmp_path)
    assert again.restored_blocks == 2 and registry(again).functions.isVerified(OUTSIDER).call()
    assert "cut short" in caplog.text
    again.close()
    assert path.read_text() == whole


def test_a_journal_that_cannot_be_written_is_logged_and_the_chain_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chain = open_dev_chain(tmp_path)
    assert chain.journal is not None
    chain.journal.close()  # as if the disk went away
    with caplog.at_level(logging.ERROR, "portcullis.devchain"):
        grant(chain, OUTSIDER)
        grant(chain, DEV_ACCOUNTS[8].address)
    assert registry(chain).functions.isVerified(OUTSIDER).call()
    assert caplog.text.count("cannot be written") == 1
    assert "block 2 and later will not survive a restart" in caplog.text
    kept = open_dev_chain(tmp_path)  # the file is a consistent prefix: the set-up block
    assert kept.restored_blocks == 1
    kept.close()


def test_the_journal_holds_raw_transactions_and_no_keys(tmp_path: Path) -> None:
    chain = open_dev_chain(tmp_path)
    grant(chain, OUTSIDER)
    chain.close()
    header, *blocks = (json.loads(line) for line in lines(journal_path(tmp_path)))
    assert header["format"] == "portcullis-devchain-journal/1" and header["chain_id"] == 31337
    assert [b["number"] for b in blocks] == [1, 2] and len(blocks[0]["transactions"]) == 5
    text = journal_path(tmp_path).read_text()
    assert not any(account.private_key[2:] in text for account in DEV_ACCOUNTS)


def test_without_a_journal_nothing_is_written(tmp_path: Path) -> None:
    chain = DevChain()
    grant(chain, OUTSIDER)
    assert chain.journal is None and list(tmp_path.iterdir()) == []
