"""Compliance facts from the chain reader's decision (contracts/README.md record layout) and from hand-written
JSON (``policy explain --facts``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from app.chain.types import ComplianceDecision, RegistryRecord, SourceReading
from app.policy.facts import FactsInputError, facts_from_decision, facts_from_json, no_source_facts
from tests.policy.helpers import ADDRESS, NOW

T = int(NOW.timestamp())
RECORD = RegistryRecord(
    residence=276,  # DE
    investor_class=1,
    kyc_level=2,
    aml_risk=1,
    flags=0x02 | (1 << 16),
    valid_until=T + 86_400,
    verified_at=T - 86_400,
    attester="0x" + "11" * 20,
    revoked_at=0,
    subject_id="0x" + "22" * 32,
    evidence_ref="0x" + "33" * 32,
    revocation_reason="0x" + "00" * 32,
)


def _decision(
    record: RegistryRecord | None = RECORD, *readings: SourceReading, reasons: tuple[str, ...] = ()
) -> ComplianceDecision:
    return ComplianceDecision(
        chain_id=1,
        address=ADDRESS,
        block_number=123,
        block_hash="0x" + "44" * 32,
        eligible=not reasons,
        reasons=reasons,
        degraded=(),
        record=record,
        readings=readings,
    )


def test_active_record() -> None:
    facts = facts_from_decision(_decision(), NOW)
    assert facts.eligible_record
    assert (facts.residence, facts.investor_class, facts.kyc_level, facts.aml_risk) == ("DE", "retail", 2, 1)
    assert facts.flags == frozenset({"appropriateness_derivatives", "bit16"})
    assert (facts.account, facts.chain_id, facts.block, facts.source) == (ADDRESS, 1, 123, "chain")
    assert not (facts.revoked or facts.expired or facts.sanctioned)


def test_expiry_is_exclusive() -> None:
    at_expiry = facts_from_decision(_decision(replace(RECORD, valid_until=T)), NOW)
    assert at_expiry.expired and not at_expiry.eligible_record
    before = facts_from_decision(_decision(replace(RECORD, valid_until=T + 1)), NOW)
    assert not before.expired and before.eligible_record


def test_revoked_and_frozen() -> None:
    revoked = facts_from_decision(_decision(replace(RECORD, revoked_at=T - 5)), NOW)
    assert revoked.revoked and not revoked.eligible_record
    frozen = facts_from_decision(_decision(replace(RECORD, flags=0x08)), NOW)
    assert "frozen" in frozen.flags and not frozen.eligible_record


def test_no_record() -> None:
    for record in (None, replace(RECORD, verified_at=0)):
        facts = facts_from_decision(_decision(record), NOW)
        assert not facts.eligible_record
        assert facts.residence is None and facts.investor_class is None and facts.flags == frozenset()
        assert facts.source == "chain"


def test_unassigned_residence_is_unknown() -> None:
    assert facts_from_decision(_decision(replace(RECORD, residence=999)), NOW).residence is None


def test_sanctioned_from_reading_or_reason() -> None:
    hit = SourceReading("sanctions", required=False, ok=True, passed=False, reason="sanctioned")
    assert facts_from_decision(_decision(RECORD, hit), NOW).sanctioned
    assert facts_from_decision(_decision(RECORD, reasons=("sanctioned",)), NOW).sanctioned
    unreadable = SourceReading("sanctions", required=False, ok=False, passed=False, reason="rpc_error: down")
    assert not facts_from_decision(_decision(RECORD, unreadable), NOW).sanctioned


def test_no_source() -> None:
    assert facts_from_decision(None, NOW) == no_source_facts()
    assert no_source_facts().source == "none"


def test_facts_from_json() -> None:
    facts = facts_from_json(
        {"residence": "de", "investor_class": "professional", "kyc_level": 2, "flags": ["us_person"]},
        NOW,
        ADDRESS,
    )
    assert facts.eligible_record and facts.residence == "DE" and facts.account == ADDRESS
    assert facts.flags == frozenset({"us_person"})
    empty = facts_from_json({}, NOW)
    assert not empty.eligible_record
    expired = facts_from_json({"investor_class": "retail", "valid_until": T - 1}, NOW)
    assert expired.expired and not expired.eligible_record
    frozen = facts_from_json({"investor_class": "retail", "flags": ["frozen"]}, NOW)
    assert not frozen.eligible_record
    later = facts_from_json({"investor_class": "retail", "valid_until": T + 1}, NOW + timedelta(seconds=0))
    assert later.eligible_record


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "facts must be a JSON object"),
        ({"colour": "red"}, "unknown facts key(s): colour"),
        ({"residence": "DEU"}, "residence must be an ISO 3166-1 alpha-2 code such as DE"),
        (
            {"investor_class": "whale"},
            "investor_class must be one of retail, professional, eligible_counterparty",
        ),
        ({"kyc_level": "2"}, "kyc_level must be int"),
        ({"kyc_level": True}, "kyc_level must be int"),
        ({"flags": "us_person"}, "flags must be a list of flag names"),
        ({"sanctioned": 1}, "sanctioned must be bool"),
    ],
)
def test_facts_from_json_errors(doc: object, message: str) -> None:
    with pytest.raises(FactsInputError) as info:
        facts_from_json(doc, NOW)
    assert str(info.value).startswith(message)


def test_to_audit_is_json_safe() -> None:
    doc = facts_from_decision(_decision(), NOW).to_audit()
    assert doc["flags"] == ["appropriateness_derivatives", "bit16"]
    assert doc["valid_until"] == T + 86_400
