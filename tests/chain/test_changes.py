"""What a chain.change entry says about each kind of followed event, read from anvil: the log's place, the
signer (the event's own ``_msgSender()`` topic, else the transaction's ``from``), the fields that changed
and the reason given on chain (app.chain.changes)."""

from __future__ import annotations

from typing import Any

from app.chain.changes import changed, describe, reason_text
from app.chain.follower import ChainChange, LogFollower
from app.chain.reader import ComplianceReader
from app.chain.rpc import Web3Rpc
from tests.anvil import Anvil, send
from tests.chain.helpers import REASON, World, attest, new_wallet, set_record
from tests.chain.test_follower import Recorder, full_settings
from tests.conftest import FakeClock


def test_reasons_are_text_when_printable_utf8_and_hex_otherwise() -> None:
    assert reason_text(b"AML-CASE-0001".ljust(32, b"\x00")) == "AML-CASE-0001"
    assert reason_text("Sanktionsprüfung".encode().ljust(32, b"\x00")) == "Sanktionsprüfung"
    control = b"case\n7".ljust(32, b"\x00")
    assert reason_text(control) == "0x" + control.hex()  # a newline could forge a line in a report
    invalid = b"\xc3(".ljust(32, b"\x00")
    assert reason_text(invalid) == "0x" + invalid.hex()


def test_only_the_fields_that_differ_are_kept_on_both_sides() -> None:
    old = {"residence": "DE", "kyc_level": 2, "flags": []}
    new = {"residence": "DE", "kyc_level": 3, "flags": ["frozen"], "attester": "0xA"}
    assert changed(old, new) == (
        {"kyc_level": 2, "flags": [], "attester": None},
        {"kyc_level": 3, "flags": ["frozen"], "attester": "0xA"},
    )


async def described(follower: LogFollower, rpc: Web3Rpc, recorder: Recorder) -> list[dict[str, Any]]:
    changes: list[ChainChange] = await follower.poll_once()
    return [await describe(rpc, c, 10_000_000) for c in changes]


async def test_every_kind_of_event_gets_the_fields_that_apply_to_it(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    a, b = new_wallet(), new_wallet()
    settings = full_settings(evm, world)
    recorder = Recorder()
    follower = LogFollower(settings, rpc, ComplianceReader(settings, rpc, clock), recorder)
    await follower.poll_once()
    set_record(evm, world, a)
    frozen = send(world.registry.functions.freeze(a, REASON), world.revoker)
    send(world.registry.functions.unfreeze(a), world.attester)
    listed = send(world.sanctions.functions.addToSanctionsList([a, b]), world.agent)
    send(world.identity.functions.registerIdentity(a, world.admin, 276), world.agent)
    uid = attest(evm, world, b)

    entries = await described(follower, rpc, recorder)
    by_event = {(e["event"], e["subject"]): e for e in entries}

    freeze = by_event[("RecordFrozen", a)]
    assert freeze["signer"] == world.revoker and freeze["signer_from"] == "event"
    assert freeze["reason"] == "AML-CASE-0001" and freeze["revision"] == 2
    assert freeze["tx_hash"] == "0x" + bytes(frozen["transactionHash"]).hex()
    assert (freeze["old"], freeze["new"]) == (
        {"flags": ["appropriateness_derivatives"]},
        {"flags": ["appropriateness_derivatives", "frozen"]},
    )
    unfreeze = by_event[("RecordUnfrozen", a)]
    assert unfreeze["signer"] == world.attester and unfreeze["new"] == {
        "flags": ["appropriateness_derivatives"]
    }

    # one sanctions log names two wallets: an entry for each, same transaction and log index
    added = [by_event[("SanctionedAddressesAdded", w)] for w in (a, b)]
    assert {e["log_index"] for e in added} == {listed["logs"][0]["logIndex"]}
    for entry in added:
        assert entry["signer"] == world.agent and entry["signer_from"] == "transaction"
        assert (entry["old"], entry["new"]) == ({"sanctioned": False}, {"sanctioned": True})
        assert entry["contract"] == world.sanctions.address

    identity = by_event[("IdentityRegistered", a)]
    assert identity["signer"] == world.agent and identity["signer_from"] == "transaction"
    assert identity["identity"] == world.admin and identity["contract"] == world.identity.address

    attested = by_event[("Attested", b)]
    assert attested["signer"] == world.eas_attester and attested["signer_from"] == "event"
    assert attested["uid"] == "0x" + uid.hex() and attested["contract"] == world.eas.address
    assert all("unread" not in e for e in entries)
