"""Attestation sources: what the compliance reader asks each one, and how it reads the answers.

Every source is a plug-in behind :class:`Source`: it names the log lookups it needs (only EAS needs any),
the ``eth_call`` s it wants, and turns their answers into one :class:`SourceReading`. Sources do no I/O; the
reader runs all their calls as one batch pinned to one block.

- ``registry``: our ComplianceRegistry (contracts/README.md): ``getRecord(address)``, then the chain's
  :class:`EligibilityRule` applied in Python with the checks, order and block time of ``isEligible``.
- ``sanctions``: the Chainalysis sanctions oracle, ``isSanctioned(address) returns (bool)``.
- ``erc3643``: an ERC-3643 identity registry, ``isVerified(address) returns (bool)``.
- ``eas``: the Ethereum Attestation Service. EAS keeps no index by recipient, so the wallet's attestation UIDs
  are found from EAS's own ``Attested(address indexed recipient, address indexed attester, bytes32 uid,
  bytes32 indexed schema)`` logs, filtered by recipient, trusted attester and schema up to the pinned block;
  the newest few are then read with ``getAttestation(bytes32)`` and honoured only when not revoked and not
  expired (EAS: ``expirationTime == 0`` or later than the block time).
- ``token:<address>[:<id>]``: ERC-20 / ERC-721 ``balanceOf(address)``, ERC-1155
  ``balanceOf(address,uint256)``; passed when the balance is at least ``min_balance``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from app.chain.types import (
    FLAG_FROZEN,
    BlockRef,
    Call,
    CallResult,
    Log,
    LogFilter,
    RegistryRecord,
    SourceReading,
    flag_name,
)
from app.settings import ChainSettings, EasSource, EligibilityRule, TokenGate

RECORD_TYPE = "(uint16,uint8,uint8,uint8,uint32,uint64,uint64,address,uint64,bytes32,bytes32,bytes32)"
ATTESTATION_TYPE = "(bytes32,bytes32,uint64,uint64,uint64,bytes32,address,address,bool,bytes)"


def selector(signature: str) -> bytes:
    """The 4-byte function selector of a canonical signature such as ``"isSanctioned(address)"``."""
    return keccak(text=signature)[:4]


def event_topic(signature: str) -> str:
    """topic0 of a canonical event signature, as lowercase 0x-hex."""
    return "0x" + keccak(text=signature).hex()


def address_topic(address: str) -> str:
    """An address as an indexed-event topic (left-padded to 32 bytes), lowercase 0x-hex."""
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


GET_RECORD = selector("getRecord(address)")
IS_SANCTIONED = selector("isSanctioned(address)")
IS_VERIFIED = selector("isVerified(address)")
GET_ATTESTATION = selector("getAttestation(bytes32)")
BALANCE_OF = selector("balanceOf(address)")
BALANCE_OF_1155 = selector("balanceOf(address,uint256)")
EAS_ATTESTED = event_topic("Attested(address,address,bytes32,bytes32)")
EAS_REVOKED = event_topic("Revoked(address,address,bytes32,bytes32)")


class Source(Protocol):
    """One attestation source. Pure: it plans reads and interprets their answers; the reader does the I/O."""

    @property
    def name(self) -> str: ...

    @property
    def required(self) -> bool:
        """Whether the wallet is refused (or the chain unavailable) when this source says no (cannot read)."""
        ...

    def log_queries(self, account: str, block: int) -> list[LogFilter]:
        """Logs to fetch (up to ``block``) before the calls can be planned; most sources need none."""
        ...

    def calls(self, account: str, logs: Sequence[Log]) -> list[Call]:
        """The calls to make for ``account``, given the logs of :meth:`log_queries`."""
        ...

    def interpret(self, account: str, results: Sequence[CallResult], at: BlockRef) -> SourceReading:
        """Turn the answers (one per call, in order) into a reading; ``at`` is the block they were read at."""
        ...


def _passed(source: Source, passed: bool, reason: str | None) -> SourceReading:
    return SourceReading(
        source.name, source.required, ok=True, passed=passed, reason=None if passed else reason
    )


def _unreadable(source: Source, reason: str) -> SourceReading:
    return SourceReading(source.name, source.required, ok=False, passed=False, reason=reason)


def _failed_call(result: CallResult) -> str:
    if not result.success:
        return "call_failed: reverted" + (f" (0x{result.data[:4].hex()})" if result.data else "")
    return f"call_failed: unexpected answer of {len(result.data)} bytes"


def _single(results: Sequence[CallResult], abi_type: str) -> object | str:
    """The one decoded value of a one-call source, or a ``call_failed`` reason."""
    if len(results) != 1 or not results[0].success:
        return _failed_call(results[0]) if results else "call_failed: no answer"
    try:
        value: object = decode([abi_type], results[0].data)[0]
    except (DecodingError, ValueError, OverflowError):
        return _failed_call(results[0])
    return value


# ---------------------------------------------------------------------- ComplianceRegistry


def decode_record(data: bytes) -> RegistryRecord:
    """ABI-decode the return data of ``getRecord(address)``; DecodingError when it is not a Record."""
    (fields,) = decode([RECORD_TYPE], data)
    return RegistryRecord(
        residence=fields[0],
        investor_class=fields[1],
        kyc_level=fields[2],
        aml_risk=fields[3],
        flags=fields[4],
        valid_until=fields[5],
        verified_at=fields[6],
        attester=to_checksum_address(fields[7]),
        revoked_at=fields[8],
        subject_id="0x" + fields[9].hex(),
        evidence_ref="0x" + fields[10].hex(),
        revocation_reason="0x" + fields[11].hex(),
    )


def _lowest_bit(value: int) -> int:
    return value & -value


def registry_verdict(record: RegistryRecord, rule: EligibilityRule, now: int) -> str | None:
    """None when ``record`` is eligible under ``rule`` at block time ``now``, else the first failed check.

    The same checks as ``ComplianceRegistry.isEligible`` (contracts/README.md, "Reads and the eligibility
    rule"): active (a record, not revoked, ``now < validUntil``, not FROZEN), then required flags, forbidden
    flags, minimum investor class, minimum KYC level, maximum AML risk.
    """
    if not record.exists:
        return "no_record"
    if record.revoked_at != 0:
        return "revoked"
    if not now < record.valid_until:
        return "expired"
    if record.flags & FLAG_FROZEN:
        return "frozen"
    missing = rule.required_flags & ~record.flags
    if missing:
        return "missing_" + flag_name(_lowest_bit(missing))
    forbidden = record.flags & rule.forbidden_flags
    if forbidden:
        return flag_name(_lowest_bit(forbidden))  # e.g. "us_person"
    if record.investor_class < rule.min_investor_class:
        return "class_below_minimum"
    if record.kyc_level < rule.min_kyc_level:
        return "kyc_below_minimum"
    if record.aml_risk > rule.max_aml_risk:
        return "aml_risk_above_maximum"
    return None


@dataclass(frozen=True, slots=True)
class RegistrySource:
    """Our ComplianceRegistry: the authoritative source, whose record also feeds the token claim."""

    address: str
    rule: EligibilityRule
    required: bool = True
    name: str = "registry"

    def log_queries(self, account: str, block: int) -> list[LogFilter]:
        return []

    def calls(self, account: str, logs: Sequence[Log]) -> list[Call]:
        return [Call(self.address, GET_RECORD + encode(["address"], [account]))]

    def record(self, results: Sequence[CallResult]) -> RegistryRecord | None:
        """The decoded record, or None when the call failed or the answer is not a Record."""
        if len(results) != 1 or not results[0].success:
            return None
        try:
            return decode_record(results[0].data)
        except (DecodingError, ValueError, OverflowError):
            return None

    def interpret(self, account: str, results: Sequence[CallResult], at: BlockRef) -> SourceReading:
        record = self.record(results)
        if record is None:
            return _unreadable(self, _failed_call(results[0]) if results else "call_failed: no answer")
        verdict = registry_verdict(record, self.rule, at.timestamp)
        return _passed(self, verdict is None, verdict)


# ---------------------------------------------------------------------- sanctions, ERC-3643


@dataclass(frozen=True, slots=True)
class SanctionsSource:
    """A Chainalysis-style sanctions oracle: refused when ``isSanctioned(account)``."""

    address: str
    required: bool = True
    name: str = "sanctions"

    def log_queries(self, account: str, block: int) -> list[LogFilter]:
        return []

    def calls(self, account: str, logs: Sequence[Log]) -> list[Call]:
        return [Call(self.address, IS_SANCTIONED + encode(["address"], [account]))]

    def interpret(self, account: str, results: Sequence[CallResult], at: BlockRef) -> SourceReading:
        value = _single(results, "bool")
        if isinstance(value, str):
            return _unreadable(self, value)
        return _passed(self, value is False, "sanctioned")


@dataclass(frozen=True, slots=True)
class IdentityRegistrySource:
    """An ERC-3643 identity registry: passed when ``isVerified(account)``."""

    address: str
    required: bool = False
    name: str = "erc3643"

    def log_queries(self, account: str, block: int) -> list[LogFilter]:
        return []

    def calls(self, account: str, logs: Sequence[Log]) -> list[Call]:
        return [Call(self.address, IS_VERIFIED + encode(["address"], [account]))]

    def interpret(self, account: str, results: Sequence[CallResult], at: BlockRef) -> SourceReading:
        value = _single(results, "bool")
        if isinstance(value, str):
            return _unreadable(self, value)
        return _passed(self, value is True, "not_verified")


# ---------------------------------------------------------------------- EAS


@dataclass(frozen=True, slots=True)
class EasAttestationSource:
    """An EAS attestation of ``schema_uid`` to the wallet by a trusted attester, not revoked, not expired."""

    address: str
    schema_uid: str  # lowercase 0x-hex bytes32
    trusted_attesters: tuple[str, ...]  # checksum addresses
    required: bool = False
    # How many of the newest matching attestations are read; one valid attestation is enough.
    max_attestations: int = 16
    name: str = "eas"

    def log_queries(self, account: str, block: int) -> list[LogFilter]:
        attesters = tuple(address_topic(a) for a in self.trusted_attesters)
        topics = (EAS_ATTESTED, address_topic(account), attesters, self.schema_uid)
        return [LogFilter((self.address,), topics, from_block=0, to_block=block)]

    def calls(self, account: str, logs: Sequence[Log]) -> list[Call]:
        uids: list[bytes] = []
        for log in reversed(logs):  # newest first
            if log.address.lower() != self.address.lower() or log.topics[:1] != (EAS_ATTESTED,):
                continue
            if len(log.data) != 32 or log.data in uids:
                continue
            uids.append(log.data)
            if len(uids) == self.max_attestations:
                break
        return [Call(self.address, GET_ATTESTATION + uid) for uid in uids]

    def interpret(self, account: str, results: Sequence[CallResult], at: BlockRef) -> SourceReading:
        trusted = {a.lower() for a in self.trusted_attesters}
        reasons: list[str] = []
        failure: str | None = None
        for result in results:
            try:
                if not result.success:
                    raise ValueError("reverted")
                (fields,) = decode([ATTESTATION_TYPE], result.data)
            except (DecodingError, ValueError, OverflowError):
                failure = failure or _failed_call(result)
                continue
            uid, schema, _time, expires, revoked, _ref, recipient, attester = fields[:8]
            if (
                uid == b"\x00" * 32
                or "0x" + schema.hex() != self.schema_uid
                or recipient.lower() != account.lower()
                or attester.lower() not in trusted
            ):
                reasons.append("no_attestation")
            elif revoked != 0:
                reasons.append("attestation_revoked")
            elif expires != 0 and expires <= at.timestamp:
                reasons.append("attestation_expired")
            else:
                return _passed(self, True, None)
        if failure is not None:
            # An attestation that could not be read might have been the valid one: unreadable, not refused.
            return _unreadable(self, failure)
        return _passed(self, False, reasons[0] if reasons else "no_attestation")


# ---------------------------------------------------------------------- token gates


@dataclass(frozen=True, slots=True)
class TokenGateSource:
    """Token gating: the wallet holds at least ``min_balance`` of an ERC-20, ERC-721 or ERC-1155 token."""

    standard: Literal["erc20", "erc721", "erc1155"]
    address: str
    token_id: int | None
    min_balance: int
    required: bool = True

    @property
    def name(self) -> str:
        return f"token:{self.address}" + ("" if self.token_id is None else f":{self.token_id}")

    def log_queries(self, account: str, block: int) -> list[LogFilter]:
        return []

    def calls(self, account: str, logs: Sequence[Log]) -> list[Call]:
        if self.standard == "erc1155":
            return [
                Call(self.address, BALANCE_OF_1155 + encode(["address", "uint256"], [account, self.token_id]))
            ]
        return [Call(self.address, BALANCE_OF + encode(["address"], [account]))]

    def interpret(self, account: str, results: Sequence[CallResult], at: BlockRef) -> SourceReading:
        value = _single(results, "uint256")
        if isinstance(value, str):
            return _unreadable(self, value)
        assert isinstance(value, int)
        return _passed(self, value >= self.min_balance, "balance_below_minimum")


# ---------------------------------------------------------------------- from settings


def _token_source(gate: TokenGate) -> TokenGateSource:
    if (gate.standard == "erc1155") != (gate.token_id is not None):
        raise ValueError(
            f"token gate {gate.address}: token_id is required for erc1155 and not allowed for {gate.standard}"
        )
    return TokenGateSource(
        standard=gate.standard,
        address=to_checksum_address(gate.address),
        token_id=gate.token_id,
        min_balance=gate.min_balance,
        required=gate.required,
    )


def _eas_source(eas: EasSource) -> EasAttestationSource:
    return EasAttestationSource(
        address=to_checksum_address(eas.address),
        schema_uid=eas.schema_uid.lower(),
        trusted_attesters=tuple(to_checksum_address(a) for a in eas.trusted_attesters),
        required=eas.required,
    )


def build_sources(settings: ChainSettings) -> tuple[Source, ...]:
    """The sources a chain's settings switch on, registry first; ValueError names a bad token gate."""
    sources: list[Source] = []
    if settings.registry is not None:
        sources.append(RegistrySource(to_checksum_address(settings.registry), settings.eligibility))
    if settings.sanctions_oracle is not None:
        sources.append(
            SanctionsSource(to_checksum_address(settings.sanctions_oracle), settings.sanctions_required)
        )
    if settings.identity_registry is not None:
        sources.append(
            IdentityRegistrySource(
                to_checksum_address(settings.identity_registry), settings.identity_required
            )
        )
    if settings.eas is not None:
        sources.append(_eas_source(settings.eas))
    sources.extend(_token_source(gate) for gate in settings.token_gates)
    return tuple(sources)
