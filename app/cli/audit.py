"""``portcullis audit verify | export | tail | purge``: the auditor's and the operator's tools.

These read the database and the checkpoint sink directly; they need no server secret, so an auditor can run
them with read access only (purge excepted).
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from app.audit import checkpoints, events
from app.audit.chain import FIELDS, GENESIS, entry_hash
from app.audit.events import ts_ms
from app.audit.verify import verify_log
from app.bootstrap import database_timeouts, server_secret
from app.cli.failures import UsageError, database_errors
from app.clock import SystemClock
from app.settings import Settings
from app.storage.db import create_engine
from app.storage.sql import SqlStore

BAR = 30


def _sink(settings: Settings) -> checkpoints.FileSink:
    assert settings.audit_checkpoint_file is not None
    return checkpoints.FileSink(settings.audit_checkpoint_file)


def _progress(stream: TextIO) -> Callable[[int, int], None]:
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        if total < 50_000 and not stream.isatty():
            return
        share = min(done / total, 1.0) if total else 1.0
        bar = "#" * int(share * BAR)
        rate = done / max(time.monotonic() - started, 1e-9)
        stream.write(f"\r[{bar:<{BAR}}] {done}/{total} entries ({rate:,.0f}/s)")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show


def _with_store(settings: Settings, fn: Callable[[SqlStore], Any]) -> Any:
    """Run ``fn`` on the database's store; an unreachable or missing database is one line (failures.py)."""

    async def run() -> Any:
        engine = create_engine(settings.database_url, database_timeouts(settings))
        store = SqlStore(engine, hasher=entry_hash)
        try:
            return await fn(store)
        finally:
            await store.close()
            await engine.dispose()

    with database_errors(settings.database_url):
        return asyncio.run(run())


def verify(settings: Settings, from_seq: int, allow_missing_checkpoints: bool = False) -> int:
    """0: the log verifies; 1: it is broken, or cannot be checked (checkpoint file missing, another log's)."""

    async def run(store: SqlStore) -> int:
        report = await verify_log(
            store,
            store,
            _sink(settings),
            from_seq,
            progress=_progress(sys.stderr),
            allow_missing_sink=allow_missing_checkpoints,
        )
        if report.error is not None:
            print(f"audit log NOT VERIFIED: {report.error}", file=sys.stderr)
            return 1
        if report.ok:
            first = report.first_seq if report.first_seq is not None else "-"
            print(
                f"audit log OK: {report.checked} entries ({first}..{report.last_seq}), "
                f"{report.checkpoints} signed checkpoints"
            )
            for note in report.notes:
                print(f"note: {note}")
            return 0
        print(f"audit log BROKEN at {report.finding}", file=sys.stderr)
        return 1

    result: int = _with_store(settings, run)
    return result


def _parse_time(option: str, value: str | None) -> str | None:
    """Accept a date or an RFC 3339 time; return the log's own timestamp form (lexically comparable)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {value!r} is not a date or time: give YYYY-MM-DD or an RFC 3339 time "
            "(2026-01-31T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return ts_ms(parsed.astimezone(UTC))


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_DID_PKH = re.compile(r"did:pkh:eip155:(\d+):(0x[0-9a-fA-F]{40})")
SUBJECT_FORMS = (
    "a wallet address 0x... (40 hex digits: every chain), did:pkh:eip155:CHAIN:0x..., "
    "a client id, or operator:USER"
)


def subject_matcher(subject: str) -> Callable[[str | None], bool]:
    """Which actors ``--subject`` selects. An address selects every ``did:pkh`` of it, on any chain; a
    ``did:pkh`` its chain and address (either case); anything else (a client id, ``operator:USER``) is
    compared as written."""
    value = subject.strip()
    if _ADDRESS.fullmatch(value):
        address = value.lower()

        def any_chain(actor: str | None) -> bool:
            found = _DID_PKH.fullmatch(actor or "")
            return found is not None and found.group(2).lower() == address

        return any_chain
    did = _DID_PKH.fullmatch(value)
    if did is not None:
        chain, address = did.group(1), did.group(2).lower()

        def one_chain(actor: str | None) -> bool:
            found = _DID_PKH.fullmatch(actor or "")
            return found is not None and (found.group(1), found.group(2).lower()) == (chain, address)

        return one_chain
    if value.lower().startswith(("0x", "did:pkh:")) or not value:
        raise UsageError(f"--subject {subject!r} is not a subject: give {SUBJECT_FORMS}")
    return lambda actor: actor == value


async def _select(
    store: SqlStore, since: str | None, until: str | None, subject: Callable[[str | None], bool] | None
) -> AsyncIterator[dict[str, Any]]:
    async for entry in store.entries():
        if since is not None and entry["ts"] < since:
            continue
        if until is not None and entry["ts"] >= until:
            continue
        if subject is not None and not subject(entry["actor"]):
            continue
        yield entry


def export(
    settings: Settings, since: str | None, until: str | None, fmt: str, subject: str | None, out: TextIO
) -> int:
    """A regulator-ready extract with its chain proof.

    JSON lines: a header (range, filters, the anchor hash before the first entry, the audit public keys),
    the entries with ``prev_hash`` and ``hash``, then every signed checkpoint covering the range. CSV: the
    entries with the same columns; the proof (anchor and checkpoints) goes to ``<output>.proof.json``
    when an output file is given, else to standard error.
    """
    lo, hi = _parse_time("--since", since), _parse_time("--until", until)
    matches = subject_matcher(subject) if subject is not None else None

    async def run(store: SqlStore) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rows = [e async for e in _select(store, lo, hi, matches)]
        cps = await store.checkpoints()
        keys = {k.kid: json.loads(k.public_jwk) for k in await store.audit_keys()}
        log_id = await store.log_id()
        anchor = GENESIS
        if rows and rows[0]["seq"] > 1:
            anchor = rows[0]["prev_hash"]
        last = rows[-1]["seq"] if rows else 0
        covering = [c for c in cps if rows and c.seq >= rows[0]["seq"]]
        proof = {
            "kind": "proof",
            "log_id": log_id,
            "since": lo,
            "until": hi,
            "subject": subject,
            "contiguous": subject is None,
            "anchor_prev_hash": anchor,
            "first_seq": rows[0]["seq"] if rows else None,
            "last_seq": last,
            "checkpoints": [_cp(c) for c in covering],
            "audit_keys": keys,
            "algorithm": "hash = sha256(JCS(entry without hash)); see docs/AUDIT.md",
        }
        return rows, proof

    rows, proof = _with_store(settings, run)
    if subject is not None and not rows:
        print(
            f"note: no entry in range has the actor {subject!r} (actors are {SUBJECT_FORMS})", file=sys.stderr
        )
    if fmt == "jsonl":
        out.write(json.dumps(proof, sort_keys=True) + "\n")
        for row in rows:
            out.write(json.dumps({"kind": "entry", **row, "hash": row["hash"]}, sort_keys=True) + "\n")
    else:
        writer = csv.writer(out)
        writer.writerow([*FIELDS, "hash"])
        for row in rows:
            writer.writerow(
                [json.dumps(row[f], sort_keys=True) if f == "data" else row[f] for f in FIELDS]
                + [row["hash"]]
            )
        proof_target = getattr(out, "name", None)
        if proof_target and proof_target != "<stdout>":
            with open(f"{proof_target}.proof.json", "w") as fh:
                json.dump(proof, fh, sort_keys=True, indent=2)
        else:
            sys.stderr.write(json.dumps(proof, sort_keys=True) + "\n")
    return 0


def _cp(cp: Any) -> dict[str, Any]:
    doc = {"seq": cp.seq, "head_hash": cp.head_hash, "ts": cp.ts, "kid": cp.kid, "signature": cp.signature}
    return doc | ({"log_id": cp.log_id} if cp.log_id is not None else {})


def _line(e: dict[str, Any]) -> str:
    who = e["actor"] or e["client_id"] or "-"
    reason = f" reason={e['reason']}" if e["reason"] else ""
    return f"{e['seq']:>8} {e['ts']} {e['type']:<22} {e['outcome']:<7} {who}{reason}"


def tail(
    settings: Settings, count: int, follow: bool, poll: float = 1.0, max_polls: int | None = None
) -> int:
    async def run(store: SqlStore) -> int:
        head, _ = await store.head()
        start = max(1, head - count + 1)
        polls = 0
        while True:
            async for e in store.entries(start):
                print(_line(e), flush=True)
                start = e["seq"] + 1
            if not follow or (max_polls is not None and polls >= max_polls):
                return 0
            polls += 1
            await asyncio.sleep(poll)

    try:
        result: int = _with_store(settings, run)
    except KeyboardInterrupt:
        return 0
    return result


def purge(settings: Settings, dry_run: bool, meta: events.RequestMeta) -> int:
    """Delete entries past retention, only up to the newest checkpoint they precede (the new anchor)."""
    cutoff = ts_ms(datetime.now(UTC) - timedelta(days=settings.audit_retention_days))

    async def run(store: SqlStore) -> int:
        cps = await store.checkpoints()
        eligible = None
        for cp in cps:
            async for e in store.entries(cp.seq, cp.seq):
                if e["ts"] < cutoff:
                    eligible = cp
        if eligible is None:
            print(f"nothing to purge: no checkpointed entries older than {cutoff}")
            return 0
        if dry_run:
            print(f"would purge entries up to {eligible.seq} (older than {cutoff}); its checkpoint remains")
            return 0
        removed = await store.purge_entries(eligible.seq)
        auditor = events.Auditor(settings, SystemClock(), server_secret(settings))
        await store.record(
            auditor.event(
                events.AUDIT_PURGED,
                events.SUCCESS,
                meta,
                reason="retention",
                data={"up_to_seq": eligible.seq, "removed": removed, "cutoff": cutoff},
            )
        )
        print(f"purged {removed} entries up to {eligible.seq}; checkpoint {eligible.seq} anchors the rest")
        return 0

    result: int = _with_store(settings, run)
    return result
