"""LogFollower on anvil: registry, sanctions, identity and EAS events reach the callback within one poll and
invalidate the reader's cache; confirmations are honoured; reorgs (evm_snapshot / evm_revert, then different
blocks) are followed without missing or double-reporting an event."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from web3.types import Wei

from app.chain.follower import ChainChange, LogFollower
from app.chain.reader import ComplianceReader
from app.chain.rpc import Web3Rpc
from app.settings import ChainSettings
from tests.anvil import CHAIN_ID, Anvil, send
from tests.chain.helpers import World, attest, chain_settings, new_wallet, set_record
from tests.chain.test_sources import eas_settings
from tests.conftest import FakeClock

REASON = b"AML-CASE-0002".ljust(32, b"\x00")


class Recorder:
    """The on_change callback: records (chain_id, account, event, block) and wakes waiters."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, str, int]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, change: ChainChange) -> None:
        self.calls.append((change.chain_id, change.account, change.event, change.block))
        self.arrived.set()


def full_settings(evm: Anvil, world: World, **overrides: Any) -> ChainSettings:
    values: dict[str, Any] = {
        "sanctions_oracle": world.sanctions.address,
        "identity_registry": world.identity.address,
        "eas": eas_settings(world, required=False),
        "cache_seconds": 300,
    }
    values.update(overrides)
    return chain_settings(evm, world, **values)


def head(evm: Anvil) -> int:
    return int(evm.w3.eth.block_number)


async def test_a_revocation_reaches_the_callback_within_one_poll_and_drops_the_cached_decision(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    settings = full_settings(evm, world)
    reader = ComplianceReader(settings, rpc, clock)
    recorder = Recorder()
    follower = LogFollower(settings, rpc, reader, recorder)
    assert await follower.poll_once() == []  # starts at the head
    assert (await reader.decide(account)).eligible  # cached for 300 s

    send(world.registry.functions.revoke(account, REASON), world.revoker)
    changes = await follower.poll_once()

    assert recorder.calls == [(CHAIN_ID, account, "RecordRevoked", head(evm))]
    assert [(c.account, c.event) for c in changes] == [(account, "RecordRevoked")]
    assert (await reader.decide(account)).reasons == ("revoked",)  # the clock did not move: cache dropped
    assert await follower.poll_once() == []
    assert follower.cursor is not None and follower.cursor.number == head(evm)


async def test_every_followed_event_is_reported_once_in_chain_order(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    a, b, c = new_wallet(), new_wallet(), new_wallet()
    settings = full_settings(evm, world)
    recorder = Recorder()
    follower = LogFollower(settings, rpc, ComplianceReader(settings, rpc, clock), recorder)
    await follower.poll_once()

    set_record(evm, world, a)
    send(world.registry.functions.freeze(a, REASON), world.revoker)
    send(world.registry.functions.unfreeze(a), world.attester)
    send(world.sanctions.functions.addToSanctionsList([b, c]), world.agent)
    send(world.sanctions.functions.removeFromSanctionsList([c]), world.agent)
    send(world.identity.functions.registerIdentity(a, world.admin, 276), world.agent)
    attest(evm, world, b)
    attest(evm, world, c, by=world.stranger)  # any attester: the schema is what the follower watches
    attest(evm, world, c, schema="0x" + "11" * 32)  # another schema: not followed
    send(world.erc20.functions.mint(a, 1), world.admin)  # not followed

    await follower.poll_once()

    assert [(account, event) for _, account, event, _ in recorder.calls] == [
        (a, "RecordSet"),
        (a, "RecordFrozen"),
        (a, "RecordUnfrozen"),
        (b, "SanctionedAddressesAdded"),
        (c, "SanctionedAddressesAdded"),
        (c, "SanctionedAddressesRemoved"),
        (a, "IdentityRegistered"),
        (b, "Attested"),
        (c, "Attested"),
    ]
    blocks = [block for *_, block in recorder.calls]
    assert blocks == sorted(blocks)
    assert await follower.poll_once() == []


async def test_confirmations_hold_events_back_until_deep_enough(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    evm.rpc("anvil_mine", 2)  # the record is confirmed before the follower starts
    settings = full_settings(evm, world, confirmations=2)
    recorder = Recorder()
    follower = LogFollower(settings, rpc, ComplianceReader(settings, rpc, clock), recorder)
    await follower.poll_once()

    send(world.registry.functions.revoke(account, REASON), world.revoker)
    revoked_in = head(evm)
    await follower.poll_once()
    evm.rpc("evm_mine")
    await follower.poll_once()
    assert recorder.calls == []

    evm.rpc("evm_mine")
    await follower.poll_once()
    assert recorder.calls == [(CHAIN_ID, account, "RecordRevoked", revoked_in)]


async def test_a_start_block_replays_history(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    first = head(evm) + 1
    a, b = new_wallet(), new_wallet()
    set_record(evm, world, a)
    set_record(evm, world, b)
    settings = full_settings(evm, world)
    recorder = Recorder()
    follower = LogFollower(
        settings, rpc, ComplianceReader(settings, rpc, clock), recorder, start_block=first, max_range=1
    )
    for _ in range(4):  # one block per poll: the start, then blocks first and first + 1, then nothing new
        await follower.poll_once()
    assert [(account, event) for _, account, event, _ in recorder.calls] == [
        (a, "RecordSet"),
        (b, "RecordSet"),
    ]


@pytest.mark.parametrize("history", [128, 1], ids=["remembered", "deeper-than-remembered"])
async def test_a_reorg_to_a_different_block_is_followed_without_missing_or_repeating(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock, history: int
) -> None:
    a, b = new_wallet(), new_wallet()
    set_record(evm, world, a)
    set_record(evm, world, b)
    settings = full_settings(evm, world)
    reader = ComplianceReader(settings, rpc, clock)
    recorder = Recorder()
    follower = LogFollower(settings, rpc, reader, recorder, history=history)
    await follower.poll_once()
    fork_point = head(evm)
    snapshot = evm.snapshot()

    send(world.registry.functions.revoke(a, REASON), world.revoker)  # block fork_point + 1, about to vanish
    orphan_hash = evm.w3.eth.get_block("latest")["hash"]
    await follower.poll_once()
    assert recorder.calls == [(CHAIN_ID, a, "RecordRevoked", fork_point + 1)]
    assert (await reader.decide(a)).reasons == ("revoked",)  # cached for 300 s

    evm.revert(snapshot)
    send(world.registry.functions.freeze(b, REASON), world.revoker)  # another block fork_point + 1
    evm.rpc("evm_mine")
    assert evm.w3.eth.get_block(fork_point + 1)["hash"] != orphan_hash

    await follower.poll_once()

    assert recorder.calls[1:] == [
        (CHAIN_ID, b, "RecordFrozen", fork_point + 1),
        (CHAIN_ID, a, "Reorged", fork_point + 2),  # a's revocation is gone: its state went back
    ]
    assert (await reader.decide(a)).eligible  # the revoked answer was dropped from the cache
    assert await follower.poll_once() == []
    assert (
        follower.cursor is not None
        and follower.cursor.hash == "0x" + evm.w3.eth.get_block("latest")["hash"].hex()
    )


async def test_a_transaction_mined_again_after_a_reorg_is_not_reported_twice(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    settings = full_settings(evm, world)
    reader = ComplianceReader(settings, rpc, clock)
    recorder = Recorder()
    follower = LogFollower(settings, rpc, reader, recorder)
    await follower.poll_once()
    fork_point = head(evm)
    snapshot = evm.snapshot()
    w3 = evm.w3
    revoker = evm.dev_accounts[2]
    assert revoker.address == world.revoker
    tx = world.registry.functions.revoke(account, REASON).build_transaction(
        {
            "from": revoker.address,
            "nonce": w3.eth.get_transaction_count(revoker.address),
            "gas": 200_000,
            "maxFeePerGas": Wei(10**11),
            "maxPriorityFeePerGas": Wei(10**9),
            "chainId": CHAIN_ID,
        }
    )
    raw = revoker.sign_transaction(dict(tx)).raw_transaction  # type: ignore[arg-type]

    tx_hash = w3.eth.send_raw_transaction(raw)
    assert w3.eth.wait_for_transaction_receipt(tx_hash)["blockNumber"] == fork_point + 1
    await follower.poll_once()
    assert recorder.calls == [(CHAIN_ID, account, "RecordRevoked", fork_point + 1)]

    evm.revert(snapshot)
    evm.rpc("evm_mine")  # an empty fork_point + 1 ...
    again = w3.eth.send_raw_transaction(raw)  # ... so the same transaction lands in fork_point + 2
    assert again == tx_hash
    assert w3.eth.wait_for_transaction_receipt(again)["blockNumber"] == fork_point + 2

    await follower.poll_once()

    assert recorder.calls == [(CHAIN_ID, account, "RecordRevoked", fork_point + 1)]  # not again
    assert (await reader.decide(account)).reasons == ("revoked",)


async def test_run_polls_until_stopped(evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    settings = full_settings(evm, world, poll_seconds=0.05)
    recorder = Recorder()
    follower = LogFollower(settings, rpc, ComplianceReader(settings, rpc, clock), recorder)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    while follower.cursor is None:
        await asyncio.sleep(0.01)

    send(world.registry.functions.revoke(account, REASON), world.revoker)
    await asyncio.wait_for(recorder.arrived.wait(), timeout=5)
    stop.set()
    await asyncio.wait_for(task, timeout=2)

    assert recorder.calls == [(CHAIN_ID, account, "RecordRevoked", head(evm))]
