"""What one compliance event says, for the audit log (docs/AUDIT.md, "chain.change"): the log it came from,
who signed it, the subject, the reason given on chain, and the subject's fields before and after it.

Events are decoded as contracts/README.md ("Events") and the standards define them:

- ComplianceRegistry ``RecordSet(account, subjectId, attester, record, revision)``, ``RecordRevoked`` /
  ``RecordFrozen(account, by, bytes32 reason, revision)``, ``RecordUnfrozen(account, by, revision)``: the
  signer is the event's ``_msgSender()`` topic; the record is read with ``getRecord`` at the block before
  and (except for ``RecordSet``, which carries the new record) at the event's block, and only the fields
  that differ are kept. When one block holds several writes for one wallet, "old" is the state before that
  block, not before this event.
- Chainalysis oracle ``SanctionedAddressesAdded/Removed(address[])``: the signer is the transaction's
  ``from``; ``sanctioned`` before (``isSanctioned`` at the block before) and after (the event).
- ERC-3643 ``IdentityRegistered/IdentityRemoved(investor, identity)``, ``CountryUpdated(investor,
  country)``: signer from the transaction; the identity contract, or the new country.
- EAS ``Attested/Revoked(recipient, attester, uid, schema)``: the signer is the EAS attester; the uid.

A reason is ``bytes32`` on chain (the CLI writes UTF-8, zero-padded): shown as text when its bytes before
the padding are printable UTF-8, as 0x-hex otherwise. A read that fails is named in ``unread`` (never the
RPC's message, whose URL may carry an API key) and the entry is written without it.
"""

from __future__ import annotations

from typing import Any, Protocol

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address

from app.chain.follower import REORGED, ChainChange
from app.chain.iso3166 import alpha2
from app.chain.sources import GET_RECORD, IS_SANCTIONED, RECORD_TYPE, decode_record
from app.chain.types import (
    INVESTOR_CLASSES,
    CallReverted,
    ChainUnavailable,
    RegistryRecord,
    flag_names,
)

REGISTRY = frozenset({"RecordSet", "RecordRevoked", "RecordFrozen", "RecordUnfrozen"})
SANCTIONS = frozenset({"SanctionedAddressesAdded", "SanctionedAddressesRemoved"})
IDENTITY = frozenset({"IdentityRegistered", "IdentityRemoved", "CountryUpdated"})
EAS = frozenset({"Attested", "Revoked"})

_READ_ERRORS = (ChainUnavailable, CallReverted, DecodingError, ValueError, OverflowError)


class ChangeReads(Protocol):
    """The reads that complete an event's description (app.chain.rpc.Web3Rpc implements them)."""

    async def call(self, to: str | None, data: bytes, block: Any, gas: int) -> bytes: ...

    async def transaction_sender(self, transaction_hash: str) -> str | None: ...


def reason_text(raw: bytes) -> str:
    """A ``bytes32`` reason as text (printable UTF-8 before the zero padding), else 0x-hex of all 32 bytes."""
    text = raw.rstrip(b"\x00")
    try:
        decoded = text.decode()
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    return decoded if decoded.isprintable() else "0x" + raw.hex()


def record_fields(record: RegistryRecord | None) -> dict[str, Any]:
    """A record's fields as the audit entry shows them ({} for a wallet without a record)."""
    if record is None or not record.exists:
        return {}
    reason = bytes.fromhex(record.revocation_reason.removeprefix("0x"))
    return {
        "residence": alpha2(record.residence) or record.residence,
        "investor_class": INVESTOR_CLASSES.get(record.investor_class, record.investor_class),
        "kyc_level": record.kyc_level,
        "aml_risk": record.aml_risk,
        "flags": flag_names(record.flags),
        "valid_until": record.valid_until,
        "verified_at": record.verified_at,
        "attester": record.attester,
        "revoked_at": record.revoked_at,
        "subject_id": record.subject_id,
        "evidence_ref": record.evidence_ref,
        "revocation_reason": reason_text(reason) if any(reason) else None,
    }


def changed(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields that differ, each on both sides (None where a side lacks it), in a stable order."""
    keys = [k for k in (*old, *(k for k in new if k not in old)) if old.get(k) != new.get(k)]
    return {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}


def _topic_address(topic: str) -> str:
    return to_checksum_address("0x" + topic[-40:])


def decode_event(change: ChainChange) -> dict[str, Any]:
    """What the log itself says: ``signer`` (when the event names it), ``reason``, ``revision``, the new
    ``record`` (RecordSet), ``identity``, ``country``, ``uid``, ``sanctioned``. Pure; DecodingError,
    ValueError or IndexError on a log that does not have the event's shape."""
    event, topics, data = change.event, change.log.topics, change.log.data
    facts: dict[str, Any] = {}
    if event == "RecordSet":
        record, revision = decode([RECORD_TYPE, "uint256"], data)
        facts["signer"] = _topic_address(topics[3])
        facts["record"] = decode_record(encode([RECORD_TYPE], [record]))
        facts["revision"] = revision
    elif event in ("RecordRevoked", "RecordFrozen"):
        reason, revision = decode(["bytes32", "uint256"], data)
        facts.update(signer=_topic_address(topics[2]), reason=reason_text(reason), revision=revision)
    elif event == "RecordUnfrozen":
        (revision,) = decode(["uint256"], data)
        facts.update(signer=_topic_address(topics[2]), revision=revision)
    elif event in EAS:
        (uid,) = decode(["bytes32"], data)
        facts.update(signer=_topic_address(topics[2]), uid="0x" + uid.hex())
    elif event in ("IdentityRegistered", "IdentityRemoved"):
        facts["identity"] = _topic_address(topics[2])
    elif event == "CountryUpdated":
        country = int(topics[2], 16)
        facts["country"] = alpha2(country) or country
    elif event in SANCTIONS:
        facts["sanctioned"] = event == "SanctionedAddressesAdded"
    return facts


def log_fields(change: ChainChange) -> dict[str, Any]:
    """Where the event is on chain: the key of the one-entry rule (chain, transaction, log index) and more."""
    entry = change.log
    return {
        "chain_id": change.chain_id,
        "block": entry.block_number,
        "block_hash": entry.block_hash,
        "tx_hash": entry.transaction_hash,
        "log_index": entry.log_index,
        "contract": to_checksum_address(entry.address),
        "event": change.event,
        "subject": to_checksum_address(change.account),
    }


async def describe(rpc: ChangeReads, change: ChainChange, gas: int) -> dict[str, Any]:
    """The ``data`` of the change's ``chain.change`` entry (docs/AUDIT.md); failed reads go to ``unread``."""
    data = log_fields(change)
    if change.event == REORGED:
        # The log's block is gone: describe the dropped log and where the chain was re-read without it.
        data["reread_up_to"] = change.block
        return data
    unread: list[str] = []
    try:
        facts = decode_event(change)
    except (DecodingError, ValueError, IndexError, OverflowError):
        facts, unread = {}, ["event_data"]
    signer = facts.pop("signer", None)
    data["signer_from"] = "event"
    if signer is None:
        data["signer_from"] = "transaction"
        try:
            signer = await rpc.transaction_sender(change.log.transaction_hash)
        except _READ_ERRORS:
            unread.append("signer")
    data["signer"] = signer
    old, new = await _states(rpc, change, facts, gas, unread)
    data["old"], data["new"] = changed(old, new)
    data.update({k: v for k, v in facts.items() if k not in ("record", "sanctioned", "country")})
    if unread:
        data["unread"] = unread
    return data


async def _states(
    rpc: ChangeReads, change: ChainChange, facts: dict[str, Any], gas: int, unread: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The subject's fields before the event's block and after the event."""
    entry, account = change.log, to_checksum_address(change.account)
    before = entry.block_number - 1
    if change.event in REGISTRY:
        call = GET_RECORD + encode(["address"], [account])

        async def record_at(block: int) -> dict[str, Any]:
            if block < 0:
                return {}
            return record_fields(decode_record(await rpc.call(entry.address, call, block, gas)))

        old = new = {}
        try:
            old = await record_at(before)
        except _READ_ERRORS:
            unread.append("old")
        record = facts.get("record")
        if isinstance(record, RegistryRecord):
            new = record_fields(record)
        else:
            try:
                new = await record_at(entry.block_number)
            except _READ_ERRORS:
                unread.append("new")
        if "old" in unread or "new" in unread:
            return {}, {}
        return old, new
    if change.event in SANCTIONS:
        if before < 0:
            return {"sanctioned": False}, {"sanctioned": facts.get("sanctioned")}
        try:
            answer = await rpc.call(
                entry.address, IS_SANCTIONED + encode(["address"], [account]), before, gas
            )
            (was,) = decode(["bool"], answer)
        except _READ_ERRORS:
            unread.append("old")
            return {}, {}
        return {"sanctioned": bool(was)}, {"sanctioned": facts.get("sanctioned")}
    if change.event == "CountryUpdated":
        return {}, {"country": facts.get("country")}
    return {}, {}
