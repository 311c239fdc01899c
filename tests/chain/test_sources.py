"""The attestation sources on anvil: the sanctions oracle, an ERC-3643 identity registry, EAS and token gates,
each required or optional, and what an unreadable source does to the decision."""

from __future__ import annotations

import itertools
from typing import Literal

import pytest

from app.chain.reader import ComplianceReader
from app.chain.rpc import Web3Rpc
from app.chain.sources import build_sources
from app.chain.types import ChainUnavailable
from app.settings import EasSource, TokenGate
from tests.anvil import Anvil, send
from tests.chain.helpers import (
    OTHER_SCHEMA,
    SCHEMA,
    World,
    attest,
    chain_settings,
    new_wallet,
    set_record,
)
from tests.conftest import FakeClock


def eas_settings(world: World, *, required: bool = True) -> EasSource:
    return EasSource(
        address=world.eas.address,
        schema_uid=SCHEMA,
        trusted_attesters=[world.eas_attester],
        required=required,
    )


async def test_a_sanctioned_wallet_is_refused(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    reader = ComplianceReader(
        chain_settings(evm, world, sanctions_oracle=world.sanctions.address), rpc, clock
    )
    assert (await reader.decide(account)).eligible

    send(world.sanctions.functions.addToSanctionsList([account]), world.agent)
    decision = await reader.decide(account)
    assert not decision.eligible and decision.reasons == ("sanctioned",)
    assert decision.readings[1].source == "sanctions" and decision.readings[1].required

    send(world.sanctions.functions.removeFromSanctionsList([account]), world.agent)
    assert (await reader.decide(account)).eligible


async def test_a_required_source_that_cannot_be_read_makes_the_chain_unavailable(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    # An account without code answers every call with empty data.
    reader = ComplianceReader(chain_settings(evm, world, sanctions_oracle=world.stranger), rpc, clock)
    with pytest.raises(ChainUnavailable, match=r"required source sanctions could not be read .*call_failed"):
        await reader.decide(account)
    # A contract without the function reverts.
    reader = ComplianceReader(chain_settings(evm, world, sanctions_oracle=world.erc20.address), rpc, clock)
    with pytest.raises(ChainUnavailable, match=r"required source sanctions .*reverted"):
        await reader.decide(account)


async def test_an_optional_source_that_cannot_be_read_is_degraded_but_does_not_block(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    settings = chain_settings(evm, world, identity_registry=world.stranger, identity_required=False)

    decision = await ComplianceReader(settings, rpc, clock).decide(account)

    assert decision.eligible
    assert decision.degraded == ("erc3643",)
    assert decision.readings[1].ok is False and decision.readings[1].reason is not None


async def test_erc3643_identity_registry(evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock) -> None:
    registered, unregistered = new_wallet(), new_wallet()
    for account in (registered, unregistered):
        set_record(evm, world, account)
    send(world.identity.functions.registerIdentity(registered, world.admin, 276), world.agent)
    settings = chain_settings(evm, world, identity_registry=world.identity.address, identity_required=True)
    reader = ComplianceReader(settings, rpc, clock)

    assert (await reader.decide(registered)).eligible
    assert (await reader.decide(unregistered)).reasons == ("not_verified",)
    send(world.identity.functions.setClaimsValid(registered, False), world.agent)
    assert (await reader.decide(registered)).reasons == ("not_verified",)


async def test_an_optional_identity_registry_that_says_no_does_not_block(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    settings = chain_settings(evm, world, identity_registry=world.identity.address)
    decision = await ComplianceReader(settings, rpc, clock).decide(account)
    assert decision.eligible and decision.degraded == ()
    assert decision.readings[1].passed is False and decision.readings[1].reason == "not_verified"


async def test_eas_attestation_present_revoked_and_from_an_untrusted_attester(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    attested, untrusted, other_schema, nothing = (new_wallet() for _ in range(4))
    uid = attest(evm, world, attested)
    attest(evm, world, untrusted, by=world.stranger)
    attest(evm, world, other_schema, schema=OTHER_SCHEMA)
    settings = chain_settings(evm, world, registry=None, eas=eas_settings(world))
    reader = ComplianceReader(settings, rpc, clock)

    assert (await reader.decide(attested)).eligible
    assert (await reader.decide(untrusted)).reasons == ("no_attestation",)
    assert (await reader.decide(other_schema)).reasons == ("no_attestation",)
    assert (await reader.decide(nothing)).reasons == ("no_attestation",)

    send(world.eas.functions.revoke((bytes.fromhex(SCHEMA[2:]), (uid, 0))), world.eas_attester)
    assert (await reader.decide(attested)).reasons == ("attestation_revoked",)

    attest(evm, world, attested)  # a fresh attestation after the revoked one counts
    assert (await reader.decide(attested)).eligible


async def test_an_expired_eas_attestation_is_refused(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    attest(evm, world, account, expires=evm.timestamp() + 100)
    reader = ComplianceReader(chain_settings(evm, world, registry=None, eas=eas_settings(world)), rpc, clock)
    assert (await reader.decide(account)).eligible

    evm.increase_time(100)  # EAS: expired once expirationTime <= block time

    assert (await reader.decide(account)).reasons == ("attestation_expired",)


async def test_an_optional_eas_source_does_not_block_and_registry_and_eas_combine(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    optional = chain_settings(evm, world, eas=eas_settings(world, required=False))
    required = chain_settings(evm, world, eas=eas_settings(world, required=True))

    assert (await ComplianceReader(optional, rpc, clock).decide(account)).eligible
    assert (await ComplianceReader(required, rpc, clock).decide(account)).reasons == ("no_attestation",)
    attest(evm, world, account)
    decision = await ComplianceReader(required, rpc, clock).decide(account)
    assert decision.eligible and [r.source for r in decision.readings] == ["registry", "eas"]


@pytest.mark.parametrize(
    ("standard", "token_id", "min_balance", "below", "above"),
    [
        ("erc20", None, 1000, 999, 1000),
        ("erc721", None, 2, 1, 2),
        ("erc1155", 7, 5, 4, 5),
    ],
)
async def test_token_gates_compare_the_balance_with_the_minimum(
    evm: Anvil,
    world: World,
    rpc: Web3Rpc,
    clock: FakeClock,
    standard: Literal["erc20", "erc721", "erc1155"],
    token_id: int | None,
    min_balance: int,
    below: int,
    above: int,
) -> None:
    account = new_wallet()
    token = {"erc20": world.erc20, "erc721": world.erc721, "erc1155": world.erc1155}[standard]
    gate = TokenGate(standard=standard, address=token.address, token_id=token_id, min_balance=min_balance)
    reader = ComplianceReader(chain_settings(evm, world, registry=None, token_gates=[gate]), rpc, clock)

    nft_ids = itertools.count(1)

    def mint(count: int) -> None:
        if standard == "erc20":
            send(token.functions.mint(account, count), world.admin)
        elif standard == "erc721":
            for _ in range(count):
                send(token.functions.mint(account, next(nft_ids)), world.admin)
        else:
            send(token.functions.mint(account, 8, 100), world.admin)  # another id does not count
            send(token.functions.mint(account, 7, count), world.admin)

    mint(below)
    decision = await reader.decide(account)
    assert decision.reasons == ("balance_below_minimum",)
    expected_name = f"token:{token.address}" + (f":{token_id}" if token_id is not None else "")
    assert decision.readings[0].source == expected_name

    mint(above - below)
    assert (await reader.decide(account)).eligible


def test_an_erc1155_gate_needs_a_token_id(evm: Anvil, world: World) -> None:
    settings = chain_settings(
        evm, world, token_gates=[TokenGate(standard="erc1155", address=world.erc1155.address)]
    )
    with pytest.raises(ValueError, match="token_id is required for erc1155"):
        build_sources(settings)


@pytest.mark.parametrize("required", [True, False])
def test_settings_name_the_sources_build_sources_builds(required: bool) -> None:
    """Settings decides "is there a gate?" (production start-up) from the same sources the reader runs."""
    from app.settings import ChainSettings

    address = "0x" + "ab" * 20
    config = ChainSettings(
        chain_id=1,
        rpc_urls=["https://rpc.example"],
        registry=address,
        sanctions_oracle=address,
        sanctions_required=required,
        identity_registry=address,
        identity_required=required,
        eas=EasSource(address=address, schema_uid=SCHEMA, trusted_attesters=[address], required=required),
        token_gates=[
            TokenGate(standard="erc20", address=address, required=required),
            TokenGate(standard="erc1155", address=address, token_id=7, required=not required),
        ],
    )
    built = {source.name.lower(): source.required for source in build_sources(config)}
    assert {name.lower(): req for name, req in config.compliance_sources().items()} == built
    assert len(built) == 6
