"""``portcullis audit verify``: recompute the chain, check every checkpoint, name the first broken entry.

The algorithm an auditor can re-implement (docs/AUDIT.md): walk entries in seq order from GENESIS (or from
a trusted anchor), require seq to step by one, prev_hash to equal the previous entry's hash and hash to
equal SHA-256 of the entry's JCS form; require every signed checkpoint's head_hash to equal the hash of
the entry at its seq; require the log to reach the highest checkpointed seq.

Before the walk, the external checkpoint file must exist (unless the caller allows it to be missing) and
belong to this log: a checkpoint signed with another log's identity is reported as such (``Report.error``),
not as tampering. Checkpoints signed before logs had an identity carry none and verify as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from app.audit.chain import GENESIS, ChainState, Finding, step
from app.audit.checkpoints import FileSink, signature_valid
from app.storage.records import AuditLog, CheckpointRecord, CheckpointStore

PROGRESS_EVERY = 10_000


@dataclass(slots=True)
class Report:
    checked: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    checkpoints: int = 0
    finding: Finding | None = None
    notes: list[str] = field(default_factory=list)
    # Why the log could not be verified at all (the checkpoint file is missing or is another log's).
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.finding is None and self.error is None


async def verify_log(
    log: AuditLog,
    store: CheckpointStore,
    sink: FileSink,
    from_seq: int = 1,
    progress: Callable[[int, int], None] | None = None,
    *,
    allow_missing_sink: bool = False,
) -> Report:
    report = Report()
    keys = {k.kid: json.loads(k.public_jwk) for k in await store.audit_keys()}
    own_kids = set(keys)
    db_cps = await store.checkpoints()
    head_seq, head_hash = await log.head()
    if not sink.exists() and db_cps:  # the database has checkpoints: the file should hold them too
        if not allow_missing_sink:
            report.error = (
                f"the external checkpoint file {sink.path} was not found, but the database holds "
                f"{len(db_cps)} signed checkpoints: the log cannot be checked against its write-once copy "
                "(restore the file or fix PORTCULLIS_AUDIT_CHECKPOINT_FILE; --allow-missing-checkpoints "
                "checks against the database's own copy only)"
            )
            return report
        report.notes.append(
            f"the external checkpoint file {sink.path} was not found: checked against the database's own "
            f"{len(db_cps)} checkpoints only (--allow-missing-checkpoints)"
        )
    elif not sink.exists() and head_seq > 0:
        report.notes.append(f"no checkpoint signed yet (the checkpoint file {sink.path} does not exist)")
    sink_cps, sink_keys = sink.read()
    report.error = _foreign(sink, sink_cps, db_cps, await log.log_id(), own_kids)
    if report.error is not None:
        return report
    keys.update(sink_keys)  # the sink's keys win: the database copy could have been swapped
    checkpoints, finding = _merge_checkpoints(db_cps, sink_cps, keys, await log.log_id())
    report.checkpoints = len(checkpoints)
    if finding is not None:
        report.finding = finding
        return report
    by_seq = {cp.seq: cp for cp in checkpoints}

    state: ChainState | None = None
    async for entry in log.entries(from_seq):
        if state is None:
            state, finding = await _anchor(log, entry["seq"], from_seq, by_seq)
            report.first_seq = entry["seq"]
            if from_seq == 1 and entry["seq"] > 1 and entry["seq"] - 1 in by_seq:
                report.notes.append(
                    f"entries up to {entry['seq'] - 1} were purged; the signed checkpoint anchors the rest"
                )
            if finding is not None:
                report.finding = finding
                return report
        found = step(entry, state)
        if found is not None:
            report.finding = found
            report.checked = state.checked
            return report
        cp = by_seq.get(entry["seq"])
        if cp is not None and cp.head_hash != entry["hash"]:
            report.finding = Finding(
                entry["seq"],
                "checkpoint",
                "differs from its signed checkpoint: entries up to here were rewritten",
            )
            report.checked = state.checked
            return report
        if progress is not None and state.checked % PROGRESS_EVERY == 0:
            progress(state.checked, head_seq)
    report.checked = state.checked if state else 0
    report.last_seq = (state.next_seq - 1) if state else from_seq - 1
    if state is None and head_seq in by_seq and by_seq[head_seq].head_hash == head_hash:
        # Every entry up to a checkpoint was purged under the retention policy: the checkpoint is the log.
        report.last_seq = head_seq
        report.notes.append(f"entries up to {head_seq} were purged; the signed checkpoint {head_seq} remains")
        return report
    if progress is not None:
        progress(report.checked, head_seq)
    top = max(by_seq, default=0)
    if top > report.last_seq:
        report.finding = Finding(
            report.last_seq + 1,
            "truncated",
            f"the log ends at {report.last_seq} but a signed checkpoint covers entries up to {top}",
        )
    elif head_seq != report.last_seq or (state is not None and head_hash != state.prev_hash):
        report.finding = Finding(
            report.last_seq + 1,
            "truncated" if head_seq > report.last_seq else "head",
            f"the head records {head_seq} entries but the log ends at {report.last_seq}",
        )
    elif state is not None and report.last_seq > top:
        report.notes.append(
            f"entries {top + 1}..{report.last_seq} are after the last checkpoint: chained, not yet signed"
        )
    return report


def _foreign(
    sink: FileSink,
    sink_cps: list[CheckpointRecord],
    db_cps: list[CheckpointRecord],
    log_id: str | None,
    own_kids: set[str],
) -> str | None:
    """Why the checkpoint file is another log's, or None. Checkpoints with an identity name their log;
    for older ones, a file none of whose keys this log ever had is another log's too. A file whose log the
    database's own checkpoints also name is this database's (a changed head is then a finding)."""
    named = {cp.log_id for cp in sink_cps if cp.log_id is not None}
    ours = {cp.log_id for cp in db_cps if cp.log_id is not None}
    if named and log_id is not None and log_id not in named and not named & ours:
        return (
            f"the checkpoint file {sink.path} belongs to another log (log {', '.join(sorted(named))}; this "
            f"database's log is {log_id}): check PORTCULLIS_AUDIT_CHECKPOINT_FILE and PORTCULLIS_DATABASE_URL"
        )
    kids = {cp.kid for cp in sink_cps}
    if sink_cps and not named and own_kids and not kids & own_kids:
        return (
            f"the checkpoint file {sink.path} belongs to another log (signed by audit keys "
            f"{', '.join(sorted(kids))}, which this database never had): check "
            "PORTCULLIS_AUDIT_CHECKPOINT_FILE and PORTCULLIS_DATABASE_URL"
        )
    return None


def _merge_checkpoints(
    db_cps: list[CheckpointRecord],
    sink_cps: list[CheckpointRecord],
    keys: dict[str, dict[str, object]],
    log_id: str | None,
) -> tuple[list[CheckpointRecord], Finding | None]:
    merged: dict[int, CheckpointRecord] = {}
    for cp in [*sink_cps, *db_cps]:
        other = merged.get(cp.seq)
        if other is not None and other.head_hash != cp.head_hash:
            return [], Finding(
                cp.seq, "checkpoint", "the database and the sink disagree about this checkpoint"
            )
        if not signature_valid(cp, keys):  # type: ignore[arg-type]
            return [], Finding(cp.seq, "checkpoint", "checkpoint signature does not verify")
        if cp.log_id is not None and cp.log_id != log_id:  # a file's foreign checkpoints are caught before
            return [], Finding(
                cp.seq,
                "checkpoint",
                f"signed for log {cp.log_id}, but the head names log {log_id}: its identity was changed",
            )
        merged.setdefault(cp.seq, cp)
    return [merged[s] for s in sorted(merged)], None


async def _anchor(
    log: AuditLog, first_seq: int, from_seq: int, by_seq: dict[int, CheckpointRecord]
) -> tuple[ChainState, Finding | None]:
    """Where the walk starts: GENESIS, a checkpoint just before the first entry, or the entry before it."""
    if first_seq == 1:
        return ChainState(1, GENESIS), None
    cp = by_seq.get(first_seq - 1)
    if cp is not None:  # entries up to a checkpoint were purged under the retention policy
        return ChainState(first_seq, cp.head_hash), None
    if from_seq > 1 and first_seq == from_seq:
        async for before in log.entries(from_seq - 1, from_seq - 1):
            return ChainState(first_seq, before["hash"]), None
    missing_from = max(from_seq, 1)
    return ChainState(first_seq, GENESIS), Finding(
        missing_from, "missing", f"entries {missing_from}..{first_seq - 1} are missing (deleted)"
    )
