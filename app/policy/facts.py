"""The inputs of a policy decision besides the request: the holder's compliance facts and how they signed in.

Facts come from the chain reader's ``ComplianceDecision`` (contracts/README.md, "Record layout", "Flags",
"Reads and the eligibility rule"): residence as ISO 3166-1 alpha-2, the MiFID II investor class by name, the
flag names of ``app.chain.types.FLAG_NAMES`` (unnamed bits as ``bit<N>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.chain.iso3166 import alpha2
from app.chain.types import FLAG_FROZEN, INVESTOR_CLASSES, ComplianceDecision, flag_names

INVESTOR_CLASS_NAMES = ("retail", "professional", "eligible_counterparty")
KNOWN_FLAGS = ("us_person", "appropriateness_derivatives", "accredited", "frozen", "pep")
SANCTIONS_SOURCE = "sanctions"
SANCTIONED = "sanctioned"


@dataclass(frozen=True, slots=True)
class ComplianceFacts:
    """What the compliance sources say about one wallet, at one time.

    ``eligible_record`` is the registry's ``isVerified``: a record exists, is not revoked, has not expired and
    is not frozen. ``revoked`` and ``expired`` say why a record that exists is not active. ``source`` is
    ``"none"`` when the wallet's chain has no compliance source at all. ``account`` is the wallet address
    (withdrawal rules compare destinations with it); ``chain_id`` and ``block`` pin the reading for the audit.
    """

    eligible_record: bool
    residence: str | None
    investor_class: str | None
    kyc_level: int | None
    aml_risk: int | None
    flags: frozenset[str]
    valid_until: int | None
    sanctioned: bool
    revoked: bool
    expired: bool
    account: str | None = None
    source: str = "chain"
    chain_id: int | None = None
    block: int | None = None

    def to_audit(self) -> dict[str, Any]:
        """The facts as JSON-safe values (sorted flags)."""
        return {
            "source": self.source,
            "account": self.account,
            "chain_id": self.chain_id,
            "block": self.block,
            "eligible_record": self.eligible_record,
            "residence": self.residence,
            "investor_class": self.investor_class,
            "kyc_level": self.kyc_level,
            "aml_risk": self.aml_risk,
            "flags": sorted(self.flags),
            "valid_until": self.valid_until,
            "sanctioned": self.sanctioned,
            "revoked": self.revoked,
            "expired": self.expired,
        }


@dataclass(frozen=True, slots=True)
class AuthContext:
    """How the holder authenticated: OpenID Connect ``acr``, ``amr`` (RFC 8176) and ``auth_time``."""

    acr: str
    amr: tuple[str, ...]
    auth_time: datetime


def no_source_facts(account: str | None = None) -> ComplianceFacts:
    """The facts of a wallet on a chain without compliance sources: nothing known, no record."""
    return ComplianceFacts(
        eligible_record=False,
        residence=None,
        investor_class=None,
        kyc_level=None,
        aml_risk=None,
        flags=frozenset(),
        valid_until=None,
        sanctioned=False,
        revoked=False,
        expired=False,
        account=account,
        source="none",
    )


def facts_from_decision(decision: ComplianceDecision | None, now: datetime) -> ComplianceFacts:
    """The facts in a chain reader decision; None (no compliance source on the chain): ``no_source_facts``.

    ``now`` decides expiry (valid while ``now < validUntil``, as the registry does). A sanctions source that
    says "sanctioned" marks the wallet sanctioned whether or not that source is required.
    """
    if decision is None:
        return no_source_facts()
    sanctioned = SANCTIONED in decision.reasons or any(
        r.source == SANCTIONS_SOURCE and r.ok and not r.passed for r in decision.readings
    )
    record = decision.record
    common: dict[str, Any] = {
        "sanctioned": sanctioned,
        "account": decision.address,
        "chain_id": decision.chain_id,
        "block": decision.block_number,
    }
    if record is None or not record.exists:
        return ComplianceFacts(
            eligible_record=False,
            residence=None,
            investor_class=None,
            kyc_level=None,
            aml_risk=None,
            flags=frozenset(),
            valid_until=None,
            revoked=False,
            expired=False,
            **common,
        )
    revoked = record.revoked_at != 0
    expired = not now.timestamp() < record.valid_until
    frozen = bool(record.flags & FLAG_FROZEN)
    return ComplianceFacts(
        eligible_record=not (revoked or expired or frozen),
        residence=alpha2(record.residence),
        investor_class=INVESTOR_CLASSES.get(record.investor_class),
        kyc_level=record.kyc_level,
        aml_risk=record.aml_risk,
        flags=frozenset(flag_names(record.flags)),
        valid_until=record.valid_until,
        revoked=revoked,
        expired=expired,
        **common,
    )


class FactsInputError(ValueError):
    """A hand-written facts document (``portcullis policy explain --facts``) is malformed."""


def facts_from_json(doc: Any, now: datetime, account: str | None = None) -> ComplianceFacts:
    """Facts written by hand, e.g. ``{"residence": "DE", "investor_class": "professional", "kyc_level": 2}``.

    Keys are the ComplianceFacts fields. Omitted ``expired`` follows ``valid_until`` and ``now``; omitted
    ``eligible_record`` is true when a record field (class, KYC level, residence) is given and the record is
    not revoked, expired or frozen; ``{}`` is a wallet with no record.
    """
    if not isinstance(doc, dict):
        raise FactsInputError("facts must be a JSON object")
    known = set(ComplianceFacts.__slots__)
    unknown = sorted(set(doc) - known)
    if unknown:
        raise FactsInputError(
            f"unknown facts key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    residence = _opt(doc, "residence", str)
    if residence is not None and (len(residence) != 2 or not residence.isalpha()):
        raise FactsInputError("residence must be an ISO 3166-1 alpha-2 code such as DE")
    investor_class = _opt(doc, "investor_class", str)
    if investor_class is not None and investor_class not in INVESTOR_CLASS_NAMES:
        raise FactsInputError(f"investor_class must be one of {', '.join(INVESTOR_CLASS_NAMES)}")
    flags_raw = doc.get("flags", [])
    if not isinstance(flags_raw, list) or not all(isinstance(f, str) for f in flags_raw):
        raise FactsInputError("flags must be a list of flag names")
    flags = frozenset(flags_raw)
    valid_until = _opt(doc, "valid_until", int)
    expired = _opt(doc, "expired", bool)
    if expired is None:
        expired = valid_until is not None and not now.timestamp() < valid_until
    revoked = bool(_opt(doc, "revoked", bool))
    kyc_level = _opt(doc, "kyc_level", int)
    eligible = _opt(doc, "eligible_record", bool)
    if eligible is None:
        has_record = any(x is not None for x in (residence, investor_class, kyc_level))
        eligible = has_record and not (revoked or expired or "frozen" in flags)
    return ComplianceFacts(
        eligible_record=eligible,
        residence=residence.upper() if residence else None,
        investor_class=investor_class,
        kyc_level=kyc_level,
        aml_risk=_opt(doc, "aml_risk", int),
        flags=flags,
        valid_until=valid_until,
        sanctioned=bool(_opt(doc, "sanctioned", bool)),
        revoked=revoked,
        expired=expired,
        account=_opt(doc, "account", str) or account,
        source=_opt(doc, "source", str) or "chain",
        chain_id=_opt(doc, "chain_id", int),
        block=_opt(doc, "block", int),
    )


def _opt(doc: dict[str, Any], key: str, kind: type[Any]) -> Any:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FactsInputError(f"{key} must be {kind.__name__}")
    return value
