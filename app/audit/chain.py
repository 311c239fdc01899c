"""The audit hash chain: RFC 8785 (JCS) canonical encoding, entry hashes, and chain verification. Pure.

    hash_n = hex(SHA-256(JCS(entry_n without "hash")))      entry_n carries seq = n and prev_hash = hash_{n-1}
    hash_0 = GENESIS = "0" * 64

Entries hold only strings, integers, booleans, null, lists and objects with ASCII keys (no floats), for
which JCS is exactly: keys sorted, no insignificant whitespace, UTF-8, JSON string escaping.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

GENESIS = "0" * 64

# The fields of an entry, in the order the CSV export writes them. ``data`` is a JSON object.
FIELDS = (
    "seq",
    "ts",
    "type",
    "outcome",
    "reason",
    "actor",
    "client_id",
    "request_id",
    "ip",
    "ua_hash",
    "session_hash",
    "kid",
    "node",
    "data",
    "prev_hash",
)


def canonical(value: Any) -> bytes:
    """RFC 8785 JSON Canonicalization for the value types an entry may hold (floats are refused)."""
    _refuse_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("audit entries carry no floats (their JCS form is not stable across languages)")
    if isinstance(value, dict):
        for v in value.values():
            _refuse_floats(v)
    elif isinstance(value, list | tuple):
        for v in value:
            _refuse_floats(v)


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: entry[k] for k in FIELDS}
    return hashlib.sha256(canonical(body)).hexdigest()


Problem = Literal[
    "missing", "duplicate", "inserted", "reordered", "modified", "truncated", "checkpoint", "head"
]


@dataclass(frozen=True, slots=True)
class Finding:
    """The first thing wrong with the log: which entry, what kind of damage, in words."""

    seq: int
    problem: Problem
    detail: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.problem}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    head_hash: str
    ts: str
    kid: str
    signature: str
    log_id: str | None = None  # the log's identity; None in checkpoints signed before logs had one

    def statement(self) -> bytes:
        """The signed bytes: JCS of the checkpoint without its signature (``log_id`` only when it has one,
        so that checkpoints signed before logs had an identity still verify)."""
        body: dict[str, Any] = {"seq": self.seq, "head_hash": self.head_hash, "ts": self.ts, "kid": self.kid}
        if self.log_id is not None:
            body["log_id"] = self.log_id
        return canonical(body)


@dataclass(slots=True)
class ChainState:
    """Where a verification run stands: the next expected seq and the hash it must link to."""

    next_seq: int
    prev_hash: str
    checked: int = 0
    before_prev_hash: str | None = None  # the hash before prev_hash, to recognise an inserted entry


def step(entry: dict[str, Any], state: ChainState) -> Finding | None:
    """Check the next entry (ascending seq order) against the chain and advance; the finding, if any."""
    seq = entry["seq"]
    if seq < state.next_seq:
        return Finding(seq, "duplicate", f"sequence number {seq} appears again after {state.next_seq - 1}")
    if seq > state.next_seq:
        missing = state.next_seq if seq == state.next_seq + 1 else f"{state.next_seq}..{seq - 1}"
        return Finding(state.next_seq, "missing", f"entries {missing} are missing (deleted)")
    if entry["prev_hash"] != state.prev_hash:
        if state.before_prev_hash is not None and entry["prev_hash"] == state.before_prev_hash:
            return Finding(seq - 1, "inserted", f"was inserted: entry {seq} links past it to entry {seq - 2}")
        return Finding(seq, "reordered", "does not link to the entry before it (moved or replaced)")
    if entry_hash(entry) != entry["hash"]:
        return Finding(seq, "modified", "its content no longer matches its hash")
    state.next_seq = seq + 1
    state.before_prev_hash = state.prev_hash
    state.prev_hash = entry["hash"]
    state.checked += 1
    return None
