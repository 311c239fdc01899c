"""ComplianceRegistry on a real EVM: roles, writes, validation, batches, revocation, freezing, pause, expiry,
eligibility, the ERC-3643 views, the revision counter and the events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3.contract import Contract

from tests.anvil import Anvil, deploy, load_artifact, reverts, send

ADMIN_ROLE = b"\x00" * 32
ATTESTER_ROLE = Web3.keccak(text="ATTESTER_ROLE")
REVOKER_ROLE = Web3.keccak(text="REVOKER_ROLE")
PAUSER_ROLE = Web3.keccak(text="PAUSER_ROLE")

US_PERSON, APPROPRIATENESS, ACCREDITED, FROZEN, PEP = (1 << i for i in range(5))
RETAIL, PROFESSIONAL, ELIGIBLE_COUNTERPARTY = 1, 2, 3
MAX_BATCH = 100
MAX_VALIDITY = 5 * 365 * 24 * 3600
GERMANY = 276
REASON = b"AML-CASE-0001".ljust(32, b"\x00")

RECORD_FIELDS = (
    "residence",
    "investorClass",
    "kycLevel",
    "amlRisk",
    "flags",
    "validUntil",
    "verifiedAt",
    "attester",
    "revokedAt",
    "subjectId",
    "evidenceRef",
    "revocationReason",
)
UNAUTHORIZED = "AccessControlUnauthorizedAccount(address,bytes32)"


@dataclass
class Roles:
    admin: str
    attester: str
    revoker: str
    pauser: str
    outsider: str


@pytest.fixture(scope="module")
def roles(chain: Anvil) -> Roles:
    return Roles(*chain.accounts[:5])


@pytest.fixture(scope="module")
def registry(chain: Anvil, roles: Roles) -> Contract:
    contract = deploy(chain.w3, "ComplianceRegistry", roles.admin, sender=roles.admin)
    for role, holder in (
        (ATTESTER_ROLE, roles.attester),
        (REVOKER_ROLE, roles.revoker),
        (PAUSER_ROLE, roles.pauser),
    ):
        send(contract.functions.grantRole(role, holder), roles.admin)
    return contract


def new_wallet() -> str:
    return str(Account.create().address)


def record_input(chain: Anvil, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "residence": GERMANY,
        "investorClass": RETAIL,
        "kycLevel": 2,
        "amlRisk": 1,
        "flags": APPROPRIATENESS,
        "validUntil": chain.timestamp() + 365 * 24 * 3600,
        "subjectId": Web3.keccak(text="subject-1"),
        "evidenceRef": Web3.keccak(text="evidence-1"),
    }
    values.update(overrides)
    return values


def get_record(registry: Contract, account: str) -> dict[str, Any]:
    return dict(zip(RECORD_FIELDS, registry.functions.getRecord(account).call(), strict=True))


def requirements(**overrides: int) -> dict[str, int]:
    values = {
        "requiredFlags": 0,
        "forbiddenFlags": 0,
        "minInvestorClass": 0,
        "minKycLevel": 0,
        "maxAmlRisk": 3,
    }
    values.update(overrides)
    return values


def revision(registry: Contract) -> int:
    value: int = registry.functions.revision().call()
    return value


def set_record(chain: Anvil, registry: Contract, roles: Roles, account: str, **overrides: Any) -> Any:
    return send(registry.functions.setRecord(account, record_input(chain, **overrides)), roles.attester)


def block_time(chain: Anvil, receipt: Any) -> int:
    return int(chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


# ---------------------------------------------------------------------------- deployment, roles, encodings


def test_constructor_grants_only_the_admin_role(registry: Contract, roles: Roles) -> None:
    fns = registry.functions
    assert fns.hasRole(ADMIN_ROLE, roles.admin).call()
    assert fns.ATTESTER_ROLE().call() == ATTESTER_ROLE
    assert fns.REVOKER_ROLE().call() == REVOKER_ROLE
    assert fns.PAUSER_ROLE().call() == PAUSER_ROLE
    assert fns.DEFAULT_ADMIN_ROLE().call() == ADMIN_ROLE
    for role in (ATTESTER_ROLE, REVOKER_ROLE, PAUSER_ROLE):
        assert not fns.hasRole(role, roles.admin).call()
        assert fns.getRoleAdmin(role).call() == ADMIN_ROLE
    assert not fns.paused().call()
    assert revision(registry) == 0


def test_constructor_rejects_the_zero_admin(chain: Anvil) -> None:
    with reverts("ComplianceRegistryZeroAddress()"):
        deploy(chain.w3, "ComplianceRegistry", "0x" + "00" * 20, sender=chain.accounts[0])


def test_admin_grants_and_revokes_roles_with_events(registry: Contract, roles: Roles) -> None:
    fns = registry.functions
    receipt = send(fns.grantRole(ATTESTER_ROLE, roles.outsider), roles.admin)
    (granted,) = registry.events.RoleGranted().process_receipt(receipt)
    assert granted["args"] == {"role": ATTESTER_ROLE, "account": roles.outsider, "sender": roles.admin}
    assert fns.hasRole(ATTESTER_ROLE, roles.outsider).call()
    receipt = send(fns.revokeRole(ATTESTER_ROLE, roles.outsider), roles.admin)
    (revoked,) = registry.events.RoleRevoked().process_receipt(receipt)
    assert revoked["args"]["account"] == roles.outsider
    assert not fns.hasRole(ATTESTER_ROLE, roles.outsider).call()


def test_a_role_holder_cannot_grant_roles(registry: Contract, roles: Roles) -> None:
    with reverts(UNAUTHORIZED, roles.attester, ADMIN_ROLE):
        registry.functions.grantRole(ATTESTER_ROLE, roles.outsider).transact({"from": roles.attester})


@pytest.mark.parametrize(
    ("call", "caller", "role"),
    [
        ("setRecord", "outsider", ATTESTER_ROLE),
        ("setRecord", "revoker", ATTESTER_ROLE),
        ("setRecord", "admin", ATTESTER_ROLE),
        ("setRecords", "outsider", ATTESTER_ROLE),
        ("setRecords", "pauser", ATTESTER_ROLE),
        ("unfreeze", "revoker", ATTESTER_ROLE),
        ("revoke", "attester", REVOKER_ROLE),
        ("revoke", "admin", REVOKER_ROLE),
        ("revokeBatch", "attester", REVOKER_ROLE),
        ("freeze", "attester", REVOKER_ROLE),
        ("freeze", "outsider", REVOKER_ROLE),
        ("pause", "attester", PAUSER_ROLE),
        ("pause", "admin", PAUSER_ROLE),
        ("unpause", "pauser", ADMIN_ROLE),
    ],
)
def test_each_write_needs_its_role(
    chain: Anvil, registry: Contract, roles: Roles, call: str, caller: str, role: bytes
) -> None:
    account = new_wallet()
    set_record(chain, registry, roles, account)
    if call == "unpause":
        send(registry.functions.pause(), roles.pauser)
    args = {
        "setRecord": (account, record_input(chain)),
        "setRecords": ([account], [record_input(chain)]),
        "unfreeze": (account,),
        "revoke": (account, REASON),
        "revokeBatch": ([account], REASON),
        "freeze": (account, REASON),
        "pause": (),
        "unpause": (),
    }[call]
    sender = getattr(roles, caller)
    with reverts(UNAUTHORIZED, sender, role):
        getattr(registry.functions, call)(*args).transact({"from": sender})


def test_supports_erc165_interfaces(registry: Contract) -> None:
    interface_id = 0
    for entry in load_artifact("IComplianceRegistry")["abi"]:
        if entry["type"] == "function":
            signature = f"{entry['name']}({','.join(_abi_type(i) for i in entry['inputs'])})"
            interface_id ^= int.from_bytes(Web3.keccak(text=signature)[:4], "big")
    supports = registry.functions.supportsInterface
    assert supports(interface_id.to_bytes(4, "big")).call()
    assert supports(bytes.fromhex("7965db0b")).call()  # IAccessControl
    assert supports(bytes.fromhex("01ffc9a7")).call()  # IERC165
    assert not supports(bytes.fromhex("ffffffff")).call()


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][len('tuple') :]}"
    return str(param["type"])


def test_encodings_are_the_documented_constants(registry: Contract) -> None:
    expected = {
        "FLAG_US_PERSON": US_PERSON,
        "FLAG_APPROPRIATENESS_DERIVATIVES": APPROPRIATENESS,
        "FLAG_ACCREDITED": ACCREDITED,
        "FLAG_FROZEN": FROZEN,
        "FLAG_PEP": PEP,
        "CLASS_RETAIL": RETAIL,
        "CLASS_PROFESSIONAL": PROFESSIONAL,
        "CLASS_ELIGIBLE_COUNTERPARTY": ELIGIBLE_COUNTERPARTY,
        "KYC_SIMPLIFIED": 1,
        "KYC_STANDARD": 2,
        "KYC_ENHANCED": 3,
        "AML_LOW": 1,
        "AML_MEDIUM": 2,
        "AML_HIGH": 3,
        "MAX_BATCH": MAX_BATCH,
        "MAX_VALIDITY": MAX_VALIDITY,
    }
    assert {name: getattr(registry.functions, name)().call() for name in expected} == expected


# ---------------------------------------------------------------------------- setRecord


def test_set_record_stores_the_attestation_and_emits(chain: Anvil, registry: Contract, roles: Roles) -> None:
    account = new_wallet()
    values = record_input(chain, flags=APPROPRIATENESS | ACCREDITED, investorClass=PROFESSIONAL, kycLevel=3)
    receipt = send(registry.functions.setRecord(account, values), roles.attester)
    expected = {
        **values,
        "verifiedAt": block_time(chain, receipt),
        "attester": roles.attester,
        "revokedAt": 0,
        "revocationReason": b"\x00" * 32,
    }
    assert get_record(registry, account) == expected
    (event,) = registry.events.RecordSet().process_receipt(receipt)
    assert event["args"]["account"] == account
    assert event["args"]["subjectId"] == values["subjectId"]
    assert event["args"]["attester"] == roles.attester
    assert dict(event["args"]["record"]) == expected
    assert event["args"]["revision"] == 1 == revision(registry)


@pytest.mark.parametrize(
    ("overrides", "error", "args"),
    [
        ({"residence": 0}, "ComplianceRegistryInvalidResidence(uint16)", (0,)),
        ({"residence": 1000}, "ComplianceRegistryInvalidResidence(uint16)", (1000,)),
        ({"investorClass": 0}, "ComplianceRegistryInvalidInvestorClass(uint8)", (0,)),
        ({"investorClass": 4}, "ComplianceRegistryInvalidInvestorClass(uint8)", (4,)),
        ({"kycLevel": 0}, "ComplianceRegistryInvalidKycLevel(uint8)", (0,)),
        ({"kycLevel": 4}, "ComplianceRegistryInvalidKycLevel(uint8)", (4,)),
        ({"amlRisk": 0}, "ComplianceRegistryInvalidAmlRisk(uint8)", (0,)),
        ({"amlRisk": 4}, "ComplianceRegistryInvalidAmlRisk(uint8)", (4,)),
        ({"validUntil": 0}, "ComplianceRegistryInvalidExpiry(uint64,uint256)", ()),
        ({"validUntil": -3600}, "ComplianceRegistryInvalidExpiry(uint64,uint256)", ()),
        ({"validUntil": MAX_VALIDITY + 3600}, "ComplianceRegistryInvalidExpiry(uint64,uint256)", ()),
        ({"subjectId": b"\x00" * 32}, "ComplianceRegistryZeroSubjectId()", ()),
        ({"evidenceRef": b"\x00" * 32}, "ComplianceRegistryZeroEvidenceRef()", ()),
    ],
)
def test_set_record_rejects_invalid_input(
    chain: Anvil,
    registry: Contract,
    roles: Roles,
    overrides: dict[str, Any],
    error: str,
    args: tuple[Any, ...],
) -> None:
    if "validUntil" in overrides:  # relative to now
        overrides = {"validUntil": max(0, chain.timestamp() + overrides["validUntil"])}
    with reverts(error, *args):
        registry.functions.setRecord(new_wallet(), record_input(chain, **overrides)).transact(
            {"from": roles.attester}
        )
    assert revision(registry) == 0


def test_set_record_rejects_the_zero_address(chain: Anvil, registry: Contract, roles: Roles) -> None:
    with reverts("ComplianceRegistryZeroAddress()"):
        registry.functions.setRecord("0x" + "00" * 20, record_input(chain)).transact({"from": roles.attester})


def test_expiry_bounds_are_exact(chain: Anvil, registry: Contract, roles: Roles) -> None:
    """validUntil must lie in (now, now + MAX_VALIDITY], with now the block's timestamp."""
    at = chain.timestamp() + 100
    account = new_wallet()
    for offset, accepted in ((0, False), (MAX_VALIDITY + 1, False), (MAX_VALIDITY, True), (1, True)):
        chain.rpc("evm_setNextBlockTimestamp", at)
        fn = registry.functions.setRecord(account, record_input(chain, validUntil=at + offset))
        # A fixed gas limit skips estimation, so the transaction itself runs in the block stamped `at`.
        receipt = chain.w3.eth.wait_for_transaction_receipt(
            fn.transact({"from": roles.attester, "gas": 500_000})
        )
        assert block_time(chain, receipt) == at
        assert receipt["status"] == int(accepted), offset
        at += 1


def test_set_record_overwrites_with_the_new_attester(chain: Anvil, registry: Contract, roles: Roles) -> None:
    account = new_wallet()
    set_record(chain, registry, roles, account, kycLevel=1)
    send(registry.functions.grantRole(ATTESTER_ROLE, roles.outsider), roles.admin)
    chain.increase_time(60)
    receipt = send(registry.functions.setRecord(account, record_input(chain, kycLevel=3)), roles.outsider)
    record = get_record(registry, account)
    assert (record["kycLevel"], record["attester"]) == (3, roles.outsider)
    assert record["verifiedAt"] == block_time(chain, receipt)
    assert revision(registry) == 2


def test_set_record_stores_every_flag_bit(chain: Anvil, registry: Contract, roles: Roles) -> None:
    account = new_wallet()
    custom = 0xFFFF0000 | PEP | US_PERSON
    set_record(chain, registry, roles, account, flags=custom)
    assert get_record(registry, account)["flags"] == custom
    assert registry.functions.isVerified(account).call()


def test_reattestation_clears_a_revocation(chain: Anvil, registry: Contract, roles: Roles) -> None:
    account = new_wallet()
    set_record(chain, registry, roles, account)
    send(registry.functions.revoke(account, REASON), roles.revoker)
    assert not registry.functions.isVerified(account).call()
    set_record(chain, registry, roles, account)
    record = get_record(registry, account)
    assert (record["revokedAt"], record["revocationReason"]) == (0, b"\x00" * 32)
    assert registry.functions.isVerified(account).call()


def test_frozen_survives_reattestation_until_unfreeze(chain: Anvil, registry: Contract, roles: Roles) -> None:
    account = new_wallet()
    set_record(chain, registry, roles, account)
    send(registry.functions.freeze(account, REASON), roles.revoker)
    receipt = set_record(chain, registry, roles, account, flags=APPROPRIATENESS)
    (event,) = registry.events.RecordSet().process_receipt(receipt)
    assert event["args"]["record"]["flags"] == APPROPRIATENESS | FROZEN
    assert not registry.functions.isVerified(account).call()
    send(registry.functions.unfreeze(account), roles.attester)
    assert get_record(registry, account)["flags"] == APPROPRIATENESS
    assert registry.functions.isVerified(account).call()


# ---------------------------------------------------------------------------- setRecords


def test_set_records_emits_one_event_per_account(chain: Anvil, registry: Contract, roles: Roles) -> None:
    accounts = [new_wallet() for _ in range(3)]
    inputs = [record_input(chain, residence=code) for code in (40, 250, 380)]
    receipt = send(registry.functions.setRecords(accounts, inputs), roles.attester)
    events = registry.events.RecordSet().process_receipt(receipt)
    assert [e["args"]["account"] for e in events] == accounts
    assert [e["args"]["record"]["residence"] for e in events] == [40, 250, 380]
    assert [e["args"]["revision"] for e in events] == [1, 2, 3]
    records = registry.functions.getRecords(accounts).call()
    assert [dict(zip(RECORD_FIELDS, r, strict=True))["residence"] for r in records] == [40, 250, 380]


def test_set_records_accepts_exactly_max_batch(chain: Anvil, registry: Contract, roles: Roles) -> None:
    accounts = [new_wallet() for _ in range(MAX_BATCH)]
    value = record_input(chain)
    receipt = send(registry.functions.setRecords(accounts, [value] * MAX_BATCH), roles.attester)
    assert len(registry.events.RecordSet().process_receipt(receipt)) == MAX_BATCH
    assert revision(registry) == MAX_BATCH


@pytest.mark.parametrize("length", [0, MAX_BATCH + 1])
def test_set_records_rejects_a_batch_out_of_bounds(
    chain: Anvil, registry: Contract, roles: Roles, length: int
) -> None:
    accounts = [new_wallet() for _ in range(length)]
    with reverts("ComplianceRegistryInvalidBatchLength(uint256,uint256)", length, MAX_BATCH):
        registry.functions.setRecords(accounts, [record_input(chain)] * length).transact(
            {"from": roles.attester}
        )


def test_set_records_rejects_mismatched_lengths(chain: Anvil, registry: Contract, roles: Roles) -> None:
    with reverts("ComplianceRegistryLengthMismatch(uint256,uint256)", 2, 1):
        registry.functions.setRecords([new_wallet(), new_wallet()], [record_input(chain)]).transact(
            {"from": roles.attester}
        )


def test_set_records_is_all_or_nothing(chain: Anvil, registry: Contract, roles: Roles) -> None:
    accounts = [new_wallet() for _ in range(3)]
    inputs = [record_input(chain), record_input(chain, kycLevel=9), record_input(chain)]
    with reverts("ComplianceRegistryInvalidKycLevel(uint8)", 9):
        registry.functions.setRecords(accounts, inputs).transact({"from": roles.attester})
    assert not any(registry.functions.contains(a).call() for a in accounts)
    assert revision(registry) == 0


# ---------------------------------------------------------------------------- revoke, revokeBatch


def test_revoke_keeps_the_record_and_stamps_it(chain: Anvil, registry: Contract, roles: Roles) -> None:
    account = new_wallet()
    set_record(chain, registry, roles, account)
    before = get_record(registry, account)
    receipt = send(registry.functions.revoke(account, REASON), roles.revoker)
    after = get_record(registry, account)
    assert after == {**before, "revokedAt": block_time(chain, receipt), "revocationReason": REASON}
    (event,) = registry.events.RecordRevoked().process_receipt(receipt)
    assert event["args"] == {"account": account, "revoker": roles.revoker, "reason": REASON, "revision": 2}
    assert not registry.functions.isVerified(account).call()
    assert registry.functions.contains(account).call()
    assert registry.functions.investorCountry(account).call() == GERMANY


def test_revoke_errors(chain: Anvil, registry: Contract, roles: Roles) -> None:
    account = new_wallet()
    with reverts("ComplianceRegistryNoRecord(address)", account):
        registry.functions.revoke(account, REASON).transact({"from": roles.revoker})
    set_record(chain, registry, roles, account)
    with reverts("ComplianceRegistryZeroReason()"):
        registry.functions.revoke(account, b"\x00" * 32).transact({"from": roles.revoker})
    send(registry.functions.revoke(account, REASON), roles.revoker)
    with reverts("ComplianceRegistryAlreadyRevoked(address)", account):
        registry.functions.revoke(account, REASON).transact({"from": roles.revoker})


def test_revoke_batch_emits_one_event_per_account(chain: Anvil, registry: Contract, roles: Roles) -> None:
    accounts = [new_wallet() for _ in range(MAX_BATCH)]
    send(registry.functions.setRecords(accounts, [record_input(chain)] * MAX_BATCH), roles.attester)
    receipt = send(registry.functions.revokeBatch(accounts, REASON), roles.revoker)
    events = registry.events.RecordRevoked().process_receipt(receipt)
    assert [e["args"]["account"] for e in events] == accounts
    assert {e["args"]["reason"] for e in events} == {REASON}
    assert [e["args"]["revision"] for e in events] == list(range(MAX_BATCH + 1, 2 * MAX_BATCH + 1))
    assert not any(registry.functions.isVerified(a).call() for a in accounts)


@pytest.mark.parametrize("length", [0, MAX_BATCH + 1])
def test_revoke_batch_rejects_a_batch_out_of_bounds(registry: Contract, roles: Roles, length: int) -> None:
    with reverts("ComplianceRegistryInvalidBatchLength(uint256,uint256)", length, MAX_BATCH):
        registry.functions.revokeBatch([new_wallet() for _ in range(length)], REASON).transact(
            {"from": roles.revoker}
        )


def test_revoke_batch_errors_are_all_or_nothing(chain: Anvil, registry: Contract, roles: Roles) -> None:
    accounts = [new_wallet() for _ in range(3)]
    send(registry.functions.setRecords(accounts, [record_input(chain)] * 3), roles.attester)
    send(registry.functions.revoke(accounts[2], REASON), roles.revoker)
    with reverts("ComplianceRegistryAlreadyRevoked(address)", accounts[2]):
        registry.functions.revokeBatch(accounts, REASON).transact({"from": roles.revoker})
    with reverts("ComplianceRegistryZeroReason()"):
        registry.functions.revokeBatch(accounts[:2], b"\x00" * 32).transact({"from": roles.revoker})
    stranger = new_wallet()
    with reverts("ComplianceRegistryNoRecord(address)", stranger):
        registry.functions.revokeBatch([accounts[0], stranger], REASON).transact({"from": roles.revoker})
    assert all(registry.functions.isVerified(a).call() for a in accounts[:2])


# ---------------------------------------------------------------------------- freeze, unfreeze


def test_freeze_and_unfreeze(chain: Anvil, registry: Contract, roles: Roles) -> None:
    account = new_wallet()
    set_record(chain, registry, roles, account)
    receipt = send(registry.functions.freeze(account, REASON), roles.revoker)
    (frozen,) = registry.events.RecordFrozen().process_receipt(receipt)
    assert frozen["args"] == {"account": account, "by": roles.revoker, "reason": REASON, "revision": 2}
    assert get_record(registry, account)["flags"] == APPROPRIATENESS | FROZEN
    assert not registry.functions.isVerified(account).call()
    assert not registry.functions.isEligible(account, requirements()).call()

    receipt = send(registry.functions.unfreeze(account), roles.attester)
    (unfrozen,) = registry.events.RecordUnfrozen().process_receipt(receipt)
    assert unfrozen["args"] == {"account": account, "by": roles.attester, "revision": 3}
    assert get_record(registry, account)["flags"] == APPROPRIATENESS
    assert registry.functions.isVerified(account).call()


def test_freeze_errors(chain: Anvil, registry: Contract, roles: Roles) -> None:
    account = new_wallet()
    with reverts("ComplianceRegistryNoRecord(address)", account):
        registry.functions.freeze(account, REASON).transact({"from": roles.revoker})
    with reverts("ComplianceRegistryNotFrozen(address)", account):
        registry.functions.unfreeze(account).transact({"from": roles.attester})
    set_record(chain, registry, roles, account)
    with reverts("ComplianceRegistryZeroReason()"):
        registry.functions.freeze(account, b"\x00" * 32).transact({"from": roles.revoker})
    send(registry.functions.freeze(account, REASON), roles.revoker)
    with reverts("ComplianceRegistryAlreadyFrozen(address)", account):
        registry.functions.freeze(account, REASON).transact({"from": roles.revoker})


def test_a_revoked_record_can_still_be_frozen(chain: Anvil, registry: Contract, roles: Roles) -> None:
    account = new_wallet()
    set_record(chain, registry, roles, account)
    send(registry.functions.revoke(account, REASON), roles.revoker)
    send(registry.functions.freeze(account, REASON), roles.revoker)
    assert get_record(registry, account)["flags"] & FROZEN


# ---------------------------------------------------------------------------- pause


def test_pause_stops_granting_writes_but_not_emergency_ones(
    chain: Anvil, registry: Contract, roles: Roles
) -> None:
    frozen, revoked, batch = new_wallet(), new_wallet(), new_wallet()
    for account in (frozen, revoked, batch):
        set_record(chain, registry, roles, account)
    send(registry.functions.freeze(frozen, REASON), roles.revoker)

    receipt = send(registry.functions.pause(), roles.pauser)
    (paused,) = registry.events.Paused().process_receipt(receipt)
    assert paused["args"]["account"] == roles.pauser
    assert registry.functions.paused().call()

    fns = registry.functions
    with reverts("EnforcedPause()"):
        fns.setRecord(new_wallet(), record_input(chain)).transact({"from": roles.attester})
    with reverts("EnforcedPause()"):
        fns.setRecords([new_wallet()], [record_input(chain)]).transact({"from": roles.attester})
    with reverts("EnforcedPause()"):
        fns.unfreeze(frozen).transact({"from": roles.attester})
    with reverts("EnforcedPause()"):
        fns.pause().transact({"from": roles.pauser})

    send(fns.revoke(revoked, REASON), roles.revoker)
    send(fns.revokeBatch([batch], REASON), roles.revoker)
    send(fns.freeze(batch, REASON), roles.revoker)
    assert fns.getRecord(revoked).call()[RECORD_FIELDS.index("revokedAt")] > 0
    assert not fns.isVerified(batch).call()

    receipt = send(fns.unpause(), roles.admin)
    (unpaused,) = registry.events.Unpaused().process_receipt(receipt)
    assert unpaused["args"]["account"] == roles.admin
    with reverts("ExpectedPause()"):
        fns.unpause().transact({"from": roles.admin})
    send(fns.unfreeze(frozen), roles.attester)


# ---------------------------------------------------------------------------- views


def test_views_of_an_unknown_wallet(registry: Contract) -> None:
    account = new_wallet()
    assert get_record(registry, account) == dict.fromkeys(RECORD_FIELDS, 0) | {
        "attester": "0x" + "00" * 20,
        "subjectId": b"\x00" * 32,
        "evidenceRef": b"\x00" * 32,
        "revocationReason": b"\x00" * 32,
    }
    fns = registry.functions
    assert not fns.contains(account).call()
    assert not fns.isVerified(account).call()
    assert fns.investorCountry(account).call() == 0
    assert not fns.isEligible(account, requirements()).call()


def test_get_records_keeps_order_and_zeroes_unknowns(chain: Anvil, registry: Contract, roles: Roles) -> None:
    known, unknown = new_wallet(), new_wallet()
    set_record(chain, registry, roles, known, residence=756)
    records = registry.functions.getRecords([unknown, known, unknown]).call()
    assert [r[0] for r in records] == [0, 756, 0]
    assert registry.functions.getRecords([]).call() == []


def test_erc3643_identity_registry_views(chain: Anvil, registry: Contract, roles: Roles) -> None:
    """ERC-3643 tooling calls these by their IIdentityRegistry signatures: same selectors and return types."""
    abi = {e["name"]: e for e in load_artifact("ComplianceRegistry")["abi"] if e["type"] == "function"}
    for name, output in (("isVerified", "bool"), ("investorCountry", "uint16"), ("contains", "bool")):
        assert [i["type"] for i in abi[name]["inputs"]] == ["address"]
        assert [o["type"] for o in abi[name]["outputs"]] == [output]
        assert abi[name]["stateMutability"] == "view"
    account = new_wallet()
    set_record(chain, registry, roles, account, residence=840, flags=US_PERSON | ACCREDITED)
    raw = chain.w3.eth.call(
        {"to": registry.address, "data": "0x" + (_sel("investorCountry(address)") + _word(account)).hex()}
    )
    assert int.from_bytes(raw, "big") == 840
    raw = chain.w3.eth.call(
        {"to": registry.address, "data": "0x" + (_sel("isVerified(address)") + _word(account)).hex()}
    )
    assert int.from_bytes(raw, "big") == 1


def _sel(signature: str) -> bytes:
    return bytes(Web3.keccak(text=signature)[:4])


def _word(address: str) -> bytes:
    return bytes.fromhex(address[2:]).rjust(32, b"\x00")


def test_record_expires_at_valid_until(chain: Anvil, registry: Contract, roles: Roles) -> None:
    account = new_wallet()
    start = chain.timestamp() + 10
    chain.rpc("evm_setNextBlockTimestamp", start)
    set_record(chain, registry, roles, account, validUntil=start + 3600)
    chain.rpc("evm_mine", start + 3599)
    assert registry.functions.isVerified(account).call()
    assert registry.functions.isEligible(account, requirements()).call()
    chain.rpc("evm_mine", start + 3600)
    assert not registry.functions.isVerified(account).call()
    assert not registry.functions.isEligible(account, requirements()).call()
    assert registry.functions.contains(account).call()


def test_increase_time_expires_a_record(chain: Anvil, registry: Contract, roles: Roles) -> None:
    account = new_wallet()
    set_record(chain, registry, roles, account, validUntil=chain.timestamp() + 7 * 24 * 3600)
    chain.increase_time(6 * 24 * 3600)
    assert registry.functions.isVerified(account).call()
    chain.increase_time(24 * 3600 + 1)
    assert not registry.functions.isVerified(account).call()


@pytest.mark.parametrize(
    ("req", "eligible"),
    [
        (requirements(), True),
        (requirements(requiredFlags=APPROPRIATENESS), True),
        (requirements(requiredFlags=APPROPRIATENESS | ACCREDITED), True),
        (requirements(requiredFlags=APPROPRIATENESS | PEP), False),
        (requirements(forbiddenFlags=US_PERSON), True),
        (requirements(forbiddenFlags=US_PERSON | ACCREDITED), False),
        (requirements(minInvestorClass=PROFESSIONAL), True),
        (requirements(minInvestorClass=ELIGIBLE_COUNTERPARTY), False),
        (requirements(minKycLevel=2), True),
        (requirements(minKycLevel=3), False),
        (requirements(maxAmlRisk=2), True),
        (requirements(maxAmlRisk=1), False),
        (requirements(maxAmlRisk=0), False),
    ],
)
def test_is_eligible_applies_each_requirement(
    chain: Anvil, registry: Contract, roles: Roles, req: dict[str, int], eligible: bool
) -> None:
    account = new_wallet()
    set_record(
        chain,
        registry,
        roles,
        account,
        flags=APPROPRIATENESS | ACCREDITED,
        investorClass=PROFESSIONAL,
        kycLevel=2,
        amlRisk=2,
    )
    assert registry.functions.isEligible(account, req).call() is eligible


@pytest.mark.parametrize("state", ["revoked", "frozen", "expired"])
def test_is_eligible_needs_an_active_record(
    chain: Anvil, registry: Contract, roles: Roles, state: str
) -> None:
    account = new_wallet()
    set_record(chain, registry, roles, account, validUntil=chain.timestamp() + 3600)
    assert registry.functions.isEligible(account, requirements()).call()
    if state == "revoked":
        send(registry.functions.revoke(account, REASON), roles.revoker)
    elif state == "frozen":
        send(registry.functions.freeze(account, REASON), roles.revoker)
    else:
        chain.increase_time(3601)
    assert not registry.functions.isEligible(account, requirements()).call()


# ---------------------------------------------------------------------------- revision counter and events


def test_revision_counts_every_record_write_and_nothing_else(
    chain: Anvil, registry: Contract, roles: Roles
) -> None:
    a, b, c = new_wallet(), new_wallet(), new_wallet()
    steps = [
        (registry.functions.setRecord(a, record_input(chain)), roles.attester, 1),
        (registry.functions.setRecords([b, c], [record_input(chain)] * 2), roles.attester, 3),
        (registry.functions.revoke(b, REASON), roles.revoker, 4),
        (registry.functions.revokeBatch([c], REASON), roles.revoker, 5),
        (registry.functions.freeze(a, REASON), roles.revoker, 6),
        (registry.functions.unfreeze(a), roles.attester, 7),
        (registry.functions.grantRole(ATTESTER_ROLE, roles.outsider), roles.admin, 7),
        (registry.functions.pause(), roles.pauser, 7),
        (registry.functions.unpause(), roles.admin, 7),
    ]
    for fn, sender, expected in steps:
        send(fn, sender)
        assert revision(registry) == expected
    with reverts("ComplianceRegistryAlreadyRevoked(address)", b):
        registry.functions.revoke(b, REASON).transact({"from": roles.revoker})
    assert revision(registry) == 7


def test_events_are_filterable_by_account_and_hold_the_history(
    chain: Anvil, registry: Contract, roles: Roles
) -> None:
    mine, other = new_wallet(), new_wallet()
    start = chain.w3.eth.block_number + 1
    set_record(chain, registry, roles, mine, kycLevel=1)
    set_record(chain, registry, roles, other)
    send(registry.functions.revoke(mine, REASON), roles.revoker)
    set_record(chain, registry, roles, mine, kycLevel=3)

    sets = registry.events.RecordSet.get_logs(from_block=start, argument_filters={"account": mine})
    assert [e["args"]["record"]["kycLevel"] for e in sets] == [1, 3]
    revokes = registry.events.RecordRevoked.get_logs(from_block=start, argument_filters={"account": mine})
    assert [e["args"]["reason"] for e in revokes] == [REASON]
    assert not registry.events.RecordRevoked.get_logs(from_block=start, argument_filters={"account": other})

    # Raw topic filter, as an indexer without the ABI would do it: topic 1 is the account.
    topic0 = Web3.keccak(text=_event_signature("RecordSet"))
    logs = chain.w3.eth.get_logs(
        {"fromBlock": start, "address": registry.address, "topics": [topic0, "0x" + _word(mine).hex()]}
    )
    assert len(logs) == 2
    assert all(bytes(log["topics"][1]) == _word(mine) for log in logs)


def _event_signature(name: str) -> str:
    (entry,) = [
        e for e in load_artifact("ComplianceRegistry")["abi"] if e["type"] == "event" and e["name"] == name
    ]
    return f"{name}({','.join(_abi_type(i) for i in entry['inputs'])})"
