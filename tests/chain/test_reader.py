"""ComplianceReader against ComplianceRegistry on anvil: the decision, its claim and reasons, the Python rule
agreeing with the contract's isEligible, the cache, and one eth_call per decision through Multicall."""

from __future__ import annotations

import itertools
import random

import pytest

from app.chain.reader import ComplianceReader
from app.chain.rpc import Web3Rpc
from app.chain.sources import registry_verdict
from app.settings import EligibilityRule, TokenGate
from tests.anvil import CHAIN_ID, Anvil, send
from tests.chain.helpers import (
    ACCREDITED,
    APPROPRIATENESS,
    FROZEN,
    PEP,
    REASON,
    RETAIL_DERIVATIVES,
    UNITED_STATES,
    US_PERSON,
    CountingRpc,
    World,
    chain_settings,
    new_wallet,
    record_input,
    set_record,
)
from tests.conftest import FakeClock


async def test_eligible_record_gives_an_eligible_decision_and_its_claim(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    valid_until = evm.timestamp() + 3600
    set_record(
        evm, world, account, investorClass=2, flags=APPROPRIATENESS | ACCREDITED, validUntil=valid_until
    )
    reader = ComplianceReader(chain_settings(evm, world), rpc, clock)

    decision = await reader.decide(account.lower())

    head = evm.w3.eth.get_block("latest")
    assert decision.eligible
    assert decision.reasons == () and decision.degraded == ()
    assert decision.address == account
    assert (decision.block_number, decision.block_hash) == (head["number"], "0x" + head["hash"].hex())
    assert decision.record is not None and decision.record.attester == world.attester
    assert [(r.source, r.ok, r.passed, r.reason) for r in decision.readings] == [
        ("registry", True, True, None)
    ]
    assert decision.claim() == {
        "residence": "DE",
        "investor_class": "professional",
        "kyc_level": 2,
        "flags": ["appropriateness_derivatives", "accredited"],
        "valid_until": valid_until,
        "source": "registry",
        "chain_id": CHAIN_ID,
        "block": head["number"],
    }


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"flags": APPROPRIATENESS | US_PERSON, "residence": UNITED_STATES}, "us_person"),
        ({"flags": 0}, "missing_appropriateness_derivatives"),
        ({"flags": APPROPRIATENESS | PEP}, "pep"),
        ({"kycLevel": 1}, "kyc_below_minimum"),
        ({"amlRisk": 3}, "aml_risk_above_maximum"),
    ],
)
async def test_records_that_miss_the_rule_are_refused_with_the_reason(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock, record: dict[str, int], reason: str
) -> None:
    account = new_wallet()
    set_record(evm, world, account, **record)
    rule = EligibilityRule(**{**RETAIL_DERIVATIVES, "forbidden_flags": US_PERSON | FROZEN | PEP})
    reader = ComplianceReader(chain_settings(evm, world, eligibility=rule), rpc, clock)

    decision = await reader.decide(account)

    assert not decision.eligible
    assert decision.reasons == (reason,)
    assert decision.readings[0].ok and not decision.readings[0].passed


async def test_investor_class_below_the_minimum(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    retail, professional = new_wallet(), new_wallet()
    set_record(evm, world, retail, investorClass=1)
    set_record(evm, world, professional, investorClass=2)
    settings = chain_settings(evm, world, eligibility=EligibilityRule(min_investor_class=2))
    reader = ComplianceReader(settings, rpc, clock)

    assert (await reader.decide(retail)).reasons == ("class_below_minimum",)
    assert (await reader.decide(professional)).eligible


async def test_no_record_revoked_and_frozen(evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock) -> None:
    revoked, frozen = new_wallet(), new_wallet()
    set_record(evm, world, revoked)
    set_record(evm, world, frozen)
    send(world.registry.functions.revoke(revoked, REASON), world.revoker)
    send(world.registry.functions.freeze(frozen, REASON), world.revoker)
    reader = ComplianceReader(chain_settings(evm, world), rpc, clock)

    unknown = await reader.decide(new_wallet())
    assert unknown.reasons == ("no_record",) and unknown.record is not None and not unknown.record.exists
    assert unknown.claim() == {"chain_id": CHAIN_ID, "block": unknown.block_number}
    revoked_decision = await reader.decide(revoked)
    assert revoked_decision.reasons == ("revoked",)
    assert (
        revoked_decision.record is not None
        and revoked_decision.record.revocation_reason == "0x" + REASON.hex()
    )
    assert (await reader.decide(frozen)).reasons == ("frozen",)


async def test_an_expired_record_is_refused(evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock) -> None:
    account = new_wallet()
    set_record(evm, world, account, validUntil=evm.timestamp() + 100)
    reader = ComplianceReader(chain_settings(evm, world), rpc, clock)
    assert (await reader.decide(account)).eligible

    evm.increase_time(100)

    assert (await reader.decide(account)).reasons == ("expired",)


async def test_the_python_rule_agrees_with_the_contracts_is_eligible(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    rng = random.Random(3643)
    now = evm.timestamp()
    accounts = [new_wallet() for _ in range(40)]
    inputs = [
        record_input(
            evm,
            account,
            residence=rng.choice([276, 250, 840, 826]),
            investorClass=rng.randint(1, 3),
            kycLevel=rng.randint(1, 3),
            amlRisk=rng.randint(1, 3),
            flags=rng.getrandbits(5) & ~FROZEN | rng.choice([0, 1 << 17]),
            validUntil=now + rng.choice([50, 3600, 86400]),
        )
        for account in accounts
    ]
    send(world.registry.functions.setRecords(accounts, inputs), world.attester)
    send(world.registry.functions.revokeBatch(accounts[:5], REASON), world.revoker)
    for account in accounts[5:9]:
        send(world.registry.functions.freeze(account, REASON), world.revoker)
    evm.increase_time(60)  # the 50 s records expire
    unknown = new_wallet()
    rules = [
        EligibilityRule(),
        EligibilityRule(**RETAIL_DERIVATIVES),
        EligibilityRule(required_flags=ACCREDITED, forbidden_flags=0, min_investor_class=2, max_aml_risk=3),
        EligibilityRule(required_flags=APPROPRIATENESS | (1 << 17), forbidden_flags=PEP, min_kyc_level=3),
        EligibilityRule(forbidden_flags=0, max_aml_risk=1, min_investor_class=3),
    ]
    outcomes = set()
    for rule, account in itertools.product(rules, [*accounts, unknown]):
        decision = await ComplianceReader(chain_settings(evm, world, eligibility=rule), rpc, clock).decide(
            account
        )
        requirements = (
            rule.required_flags,
            rule.forbidden_flags,
            rule.min_investor_class,
            rule.min_kyc_level,
            rule.max_aml_risk,
        )
        on_chain = world.registry.functions.isEligible(account, requirements).call(
            block_identifier=decision.block_number
        )
        assert decision.eligible == on_chain, (rule, decision.record, decision.reasons)
        assert decision.record is not None
        block_time = evm.w3.eth.get_block(decision.block_number)["timestamp"]
        assert (registry_verdict(decision.record, rule, block_time) is None) == on_chain
        outcomes.add((on_chain, decision.reasons))
    reasons = {reason for _, rs in outcomes for reason in rs}
    assert {True, False} == {eligible for eligible, _ in outcomes}
    assert {"revoked", "frozen", "expired", "no_record", "class_below_minimum"} <= reasons


async def test_one_decision_is_one_eth_call_through_multicall(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    send(world.erc20.functions.mint(account, 5), world.admin)
    send(world.erc721.functions.mint(account, 1), world.admin)
    send(world.erc1155.functions.mint(account, 7, 1), world.admin)
    send(world.identity.functions.registerIdentity(account, world.admin, 276), world.agent)
    settings = chain_settings(
        evm,
        world,
        sanctions_oracle=world.sanctions.address,
        identity_registry=world.identity.address,
        token_gates=[
            TokenGate(standard="erc20", address=world.erc20.address, min_balance=5),
            TokenGate(standard="erc721", address=world.erc721.address),
            TokenGate(standard="erc1155", address=world.erc1155.address, token_id=7),
        ],
    )
    counting = CountingRpc(rpc)
    reader = ComplianceReader(settings, counting, clock)

    first = await reader.decide(account)
    second = await reader.decide(new_wallet())

    assert first.eligible and len(first.readings) == 6 and all(r.passed for r in first.readings)
    assert not second.eligible
    assert second.reasons == (
        "no_record",
        "balance_below_minimum",
        "balance_below_minimum",
        "balance_below_minimum",
    )
    assert counting.counts["call"] == 2  # one aggregate3 per decision
    assert counting.counts["code_at"] == 1  # Multicall's code is looked up once per reader


async def test_without_multicall_every_source_is_its_own_eth_call_at_the_same_block(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    # The default Multicall3 address has no code on a fresh anvil.
    settings = chain_settings(
        evm,
        world,
        multicall="0xcA11bde05977b3631167028862bE2a173976CA11",
        sanctions_oracle=world.sanctions.address,
    )
    counting = CountingRpc(rpc)

    decision = await ComplianceReader(settings, counting, clock).decide(account)

    assert decision.eligible and [r.source for r in decision.readings] == ["registry", "sanctions"]
    assert counting.counts["call"] == 2
    assert counting.counts["block"] == 1


async def test_decisions_are_cached_for_cache_seconds_and_can_be_invalidated(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account)
    counting = CountingRpc(rpc)
    reader = ComplianceReader(chain_settings(evm, world, cache_seconds=30), counting, clock)

    first = await reader.decide(account)
    send(world.registry.functions.revoke(account, REASON), world.revoker)
    clock.advance(29)
    assert await reader.decide(account.lower()) is first  # cached: the revocation is not seen yet
    assert counting.counts["call"] == 1

    clock.advance(2)
    assert (await reader.decide(account)).reasons == ("revoked",)
    assert counting.counts["call"] == 2

    set_record(evm, world, account)
    reader.invalidate(account)
    assert (await reader.decide(account)).eligible
    assert counting.counts["call"] == 3


async def test_the_cache_never_outlives_the_record(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    account = new_wallet()
    set_record(evm, world, account, validUntil=evm.timestamp() + 10)
    counting = CountingRpc(rpc)
    reader = ComplianceReader(chain_settings(evm, world, cache_seconds=3600), counting, clock)
    await reader.decide(account)
    clock.advance(5)
    await reader.decide(account)
    assert counting.counts["call"] == 1

    clock.advance(6)  # past the record's remaining validity, long before cache_seconds
    await reader.decide(account)
    assert counting.counts["call"] == 2


async def test_a_bad_address_is_a_value_error(
    evm: Anvil, world: World, rpc: Web3Rpc, clock: FakeClock
) -> None:
    reader = ComplianceReader(chain_settings(evm, world), rpc, clock)
    with pytest.raises(ValueError):
        await reader.decide("0x1234")
