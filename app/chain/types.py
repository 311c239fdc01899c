"""The values of the chain reader: registry records, source readings, pinned decisions, and its errors.

Encodings follow contracts/README.md ("ComplianceRegistry": Record layout, flags, investor classes); residence
is ISO 3166-1 numeric on chain and alpha-2 in the token claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from app.chain.iso3166 import alpha2

# Flag bits with a name in contracts/README.md ("Flags"); other bits are reported as "bit<N>".
FLAG_NAMES: MappingProxyType[int, str] = MappingProxyType(
    {
        0x01: "us_person",
        0x02: "appropriateness_derivatives",
        0x04: "accredited",
        0x08: "frozen",
        0x10: "pep",
    }
)
FLAG_FROZEN = 0x08
# MiFID II client categories as the registry encodes them (1 < 2 < 3).
INVESTOR_CLASSES: MappingProxyType[int, str] = MappingProxyType(
    {1: "retail", 2: "professional", 3: "eligible_counterparty"}
)


# The facts about the holder in ``ComplianceDecision.claim()`` (personal data: each one is carried only as far
# as a granted scope asks for it, app.policy.claims), and the decision's provenance (where and when it was
# read: "registry" or, with compliance switched off, "none").
CLAIM_FACTS = ("residence", "investor_class", "kyc_level", "flags", "valid_until")
CLAIM_PROVENANCE = ("source", "chain_id", "block")


def flag_name(bit: int) -> str:
    """The name of one flag value (a power of two): "us_person", ..., or "bit<N>" for an unnamed bit."""
    return FLAG_NAMES.get(bit, f"bit{bit.bit_length() - 1}")


def flag_names(flags: int) -> list[str]:
    """The names of the bits set in ``flags``, lowest bit first."""
    return [flag_name(1 << i) for i in range(32) if flags & (1 << i)]


@dataclass(frozen=True, slots=True)
class RegistryRecord:
    """A decoded ``IComplianceRegistry.Record``; ``verified_at == 0`` means the wallet has no record."""

    residence: int
    investor_class: int
    kyc_level: int
    aml_risk: int
    flags: int
    valid_until: int
    verified_at: int
    attester: str
    revoked_at: int
    subject_id: str  # 0x-hex bytes32
    evidence_ref: str
    revocation_reason: str

    @property
    def exists(self) -> bool:
        return self.verified_at != 0


@dataclass(frozen=True, slots=True)
class SourceReading:
    """What one attestation source said about one wallet at the decision's block."""

    source: str  # "registry", "sanctions", "erc3643", "eas", "token:<address>[:<id>]"
    required: bool
    ok: bool  # the read succeeded
    passed: bool  # the source says yes (False when not ok)
    reason: str | None  # why not: "revoked", "sanctioned", ..., "rpc_error: ...", "call_failed: ..."


@dataclass(frozen=True, slots=True)
class ComplianceDecision:
    """May this wallet trade? Pinned to one block, with every source's reading and the reasons for a no."""

    chain_id: int
    address: str
    block_number: int
    block_hash: str
    eligible: bool  # every required source was read and passed
    reasons: tuple[str, ...]  # the reasons of the failed required sources
    degraded: tuple[str, ...]  # optional sources that could not be read (they do not block)
    record: RegistryRecord | None
    readings: tuple[SourceReading, ...]

    def claim(self) -> dict[str, Any]:
        """The compliance claim for a token. Without a registry record it holds only the chain and block."""
        claim: dict[str, Any] = {}
        record = self.record
        if record is not None and record.exists:
            claim = {
                "residence": alpha2(record.residence),
                "investor_class": INVESTOR_CLASSES.get(record.investor_class),
                "kyc_level": record.kyc_level,
                "flags": flag_names(record.flags),
                "valid_until": record.valid_until,
                "source": "registry",
            }
        claim["chain_id"] = self.chain_id
        claim["block"] = self.block_number
        return claim


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block the reads are pinned to."""

    number: int
    hash: str  # 0x-hex
    parent_hash: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class Call:
    """One ``eth_call``: a contract and its calldata."""

    to: str
    data: bytes


@dataclass(frozen=True, slots=True)
class CallResult:
    """The answer to one call: success and return data (or revert data)."""

    success: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class LogFilter:
    """An ``eth_getLogs`` filter; each topic position is None (any), one 0x-hex topic, or a tuple (any of)."""

    addresses: tuple[str, ...]
    topics: tuple[str | tuple[str, ...] | None, ...]
    from_block: int
    to_block: int


@dataclass(frozen=True, slots=True)
class Log:
    """One log entry, topics and hashes as lowercase 0x-hex."""

    address: str
    topics: tuple[str, ...]
    data: bytes
    block_number: int
    block_hash: str
    transaction_hash: str
    log_index: int


class ChainUnavailable(Exception):
    """The chain cannot answer: every RPC URL is down or too slow, an RPC reports another chain id, or a
    required source could not be read. The message says which; the server answers 503 (fail closed)."""


class CallReverted(Exception):
    """An ``eth_call`` reverted (or failed in execution, e.g. out of gas); ``data`` is the revert data."""

    def __init__(self, message: str, data: bytes = b"") -> None:
        super().__init__(message)
        self.data = data
