"""Web3Rpc on anvil: chain id checked at first use, failover from a dead URL, fail closed when every URL is
down or hangs (within the timeout), and the reads the reader and follower rely on."""

from __future__ import annotations

import re
import time

import pytest

from app.chain.reader import ComplianceReader
from app.chain.rpc import Web3Rpc
from app.chain.types import CallReverted, ChainUnavailable, LogFilter
from tests.anvil import CHAIN_ID, Anvil
from tests.chain.helpers import (
    HangingServer,
    World,
    chain_settings,
    closed_port_url,
    deploy_world,
    new_wallet,
    set_record,
)
from tests.conftest import FakeClock


async def test_reads_pinned_blocks_code_calls_and_logs(evm: Anvil, world: World, rpc: Web3Rpc) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    head = await rpc.block()
    latest = evm.w3.eth.get_block("latest")
    assert (head.number, head.hash, head.timestamp) == (
        latest["number"],
        "0x" + latest["hash"].hex(),
        latest["timestamp"],
    )
    parent = await rpc.block(confirmations=1)
    assert parent.number == head.number - 1 and parent.hash == head.parent_hash
    assert await rpc.block_at(head.number) == head
    assert await rpc.block_at(head.number + 1000) is None
    assert await rpc.chain_id() == CHAIN_ID
    assert await rpc.code_at(world.registry.address, head.number)
    assert await rpc.code_at(new_wallet(), head.number) == b""

    logs = await rpc.get_logs(LogFilter((world.registry.address,), (), head.number, head.number))
    assert len(logs) == 1 and logs[0].topics[1] == "0x" + "00" * 12 + account[2:].lower()
    with pytest.raises(CallReverted) as info:
        await rpc.call(world.registry.address, bytes.fromhex("deadbeef"), head.number, 100_000)
    assert info.value.data == b""


async def test_failover_from_a_dead_first_url_to_a_live_second_one(
    evm: Anvil, world: World, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    settings = chain_settings(evm, world, rpc_urls=[closed_port_url(), evm.url])
    rpc = Web3Rpc.from_settings(settings)
    try:
        assert (await ComplianceReader(settings, rpc, clock).decide(account)).eligible
        assert rpc.current_url == evm.url  # and it stays there for the next call
        assert (await rpc.block()).number >= 1
    finally:
        await rpc.aclose()


async def test_every_url_down_is_chain_unavailable(evm: Anvil, world: World, clock: FakeClock) -> None:
    dead = [closed_port_url(), closed_port_url()]
    settings = chain_settings(evm, world, rpc_urls=dead)
    rpc = Web3Rpc.from_settings(settings)
    try:
        with pytest.raises(ChainUnavailable) as info:
            await ComplianceReader(settings, rpc, clock).decide(new_wallet())
    finally:
        await rpc.aclose()
    assert all(f"RPC at {url}" in str(info.value) for url in dead)


async def test_an_rpc_on_another_chain_is_never_used(evm: Anvil, world: World, clock: FakeClock) -> None:
    settings = chain_settings(evm, world, chain_id=1)
    rpc = Web3Rpc.from_settings(settings)
    try:
        with pytest.raises(
            ChainUnavailable, match=re.escape(f"RPC at {evm.url} reports chain id {CHAIN_ID}, configured 1")
        ):
            await ComplianceReader(settings, rpc, clock).decide(new_wallet())
    finally:
        await rpc.aclose()


async def test_a_hanging_rpc_times_out_instead_of_hanging(evm: Anvil, world: World, clock: FakeClock) -> None:
    async with HangingServer() as hanging:
        settings = chain_settings(evm, world, rpc_urls=[hanging.url], rpc_timeout_seconds=0.5)
        rpc = Web3Rpc.from_settings(settings)
        started = time.monotonic()
        try:
            with pytest.raises(ChainUnavailable, match=r"no answer within 0\.5s"):
                await ComplianceReader(settings, rpc, clock).decide(new_wallet())
        finally:
            await rpc.aclose()
        assert time.monotonic() - started < 1.5


async def test_a_hanging_first_url_fails_over_after_its_timeout(
    evm: Anvil, world: World, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    async with HangingServer() as hanging:
        settings = chain_settings(evm, world, rpc_urls=[hanging.url, evm.url], rpc_timeout_seconds=0.5)
        rpc = Web3Rpc.from_settings(settings)
        started = time.monotonic()
        try:
            assert (await ComplianceReader(settings, rpc, clock).decide(account)).eligible
        finally:
            await rpc.aclose()
        assert time.monotonic() - started < 2.0
        assert rpc.current_url == evm.url


async def test_an_rpc_that_dies_after_working_is_chain_unavailable(world: World, clock: FakeClock) -> None:
    with Anvil() as second:
        other = deploy_world(second)
        account = new_wallet()
        set_record(second, other, account)
        settings = chain_settings(second, other)
        rpc = Web3Rpc.from_settings(settings)
        reader = ComplianceReader(settings, rpc, clock)
        assert (await reader.decide(account)).eligible
    try:
        with pytest.raises(ChainUnavailable, match="cannot read the head block"):
            await reader.decide(account)
    finally:
        await rpc.aclose()
