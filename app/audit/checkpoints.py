"""Signed audit checkpoints: "the log had SEQ entries ending in HEAD_HASH at TS", signed Ed25519 (RFC 8037).

A checkpoint is written to the database and appended to a write-once sink (a JSON-lines file by default),
so deleting the tail of the log, or the log's own checkpoints, is detectable against the sink.

ASVS 16.5.3 (fail closed when the log cannot be written): :class:`SinkHealth` tracks whether the sink takes
checkpoints. While it does not, ``/ready`` says so, and once ``max_backlog`` entries have gone without a
checkpoint in the sink, authentication is refused until a checkpoint is written there again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from app.audit import events
from app.audit.chain import Checkpoint
from app.errors import TemporarilyUnavailable
from app.oidc.keys import decrypt_private_key, generate_key
from app.storage.records import AuditLog, CheckpointRecord, CheckpointStore

log = logging.getLogger("portcullis.audit")

# Seconds a client should wait before retrying while the sink is failing: the checkpointer retries each tick.
SINK_RETRY_AFTER = 5


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class AuditSigner:
    kid: str
    private_key: ed25519.Ed25519PrivateKey
    public_jwk: dict[str, Any]

    def sign(self, seq: int, head_hash: str, ts: str, log_id: str | None = None) -> CheckpointRecord:
        statement = Checkpoint(seq, head_hash, ts, self.kid, "", log_id).statement()
        signature = _b64url(self.private_key.sign(statement))
        return CheckpointRecord(seq, head_hash, ts, self.kid, signature, log_id)


def public_key(jwk: dict[str, Any]) -> ed25519.Ed25519PublicKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise ValueError("the audit key must be an Ed25519 OKP JWK")
    return ed25519.Ed25519PublicKey.from_public_bytes(_unb64url(jwk["x"]))


def signature_valid(cp: CheckpointRecord, keys: dict[str, dict[str, Any]]) -> bool:
    jwk = keys.get(cp.kid)
    if jwk is None:
        return False
    statement = Checkpoint(cp.seq, cp.head_hash, cp.ts, cp.kid, "", cp.log_id).statement()
    try:
        public_key(jwk).verify(_unb64url(cp.signature), statement)
    except (InvalidSignature, ValueError):
        return False
    return True


async def load_or_create_signer(
    store: CheckpointStore, secret: bytes, auditor: events.Auditor, now: datetime
) -> AuditSigner:
    """The newest audit key; the first start creates one (and records that it did)."""
    records = await store.audit_keys()
    if not records:
        record, _ = generate_key("EdDSA", secret, now)
        audit = auditor.event(
            events.AUDIT_KEY_CREATED, events.SUCCESS, events.RequestMeta(), kid=record.kid, at=now
        )
        await store.add_audit_key(record, audit)
        records = await store.audit_keys()
    newest = records[-1]
    key = decrypt_private_key(newest.private_key_encrypted, secret, newest.kid)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return AuditSigner(newest.kid, key, json.loads(newest.public_jwk))


class FileSink:
    """Append-only JSON lines: one checkpoint per line, each with the public key that signed it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, cp: CheckpointRecord, public_jwk: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fields = {
            "seq": cp.seq,
            "head_hash": cp.head_hash,
            "ts": cp.ts,
            "kid": cp.kid,
            "signature": cp.signature,
            "public_jwk": public_jwk,
        }
        line = json.dumps(fields | ({"log_id": cp.log_id} if cp.log_id is not None else {}), sort_keys=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> tuple[list[CheckpointRecord], dict[str, dict[str, Any]]]:
        if not self.path.exists():
            return [], {}
        cps: list[CheckpointRecord] = []
        keys: dict[str, dict[str, Any]] = {}
        for line in self.path.read_text().splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            cps.append(
                CheckpointRecord(d["seq"], d["head_hash"], d["ts"], d["kid"], d["signature"], d.get("log_id"))
            )
            keys[d["kid"]] = d["public_jwk"]
        return cps, keys


class SinkHealth:
    """Whether this process's checkpoints reach the write-once sink, and how far the log has run past the
    last one that did. Changed only by the :class:`Checkpointer`; read by ``/ready`` and :meth:`admit`."""

    def __init__(self, max_backlog: int) -> None:
        self.max_backlog = max_backlog
        self.written_seq = 0  # the last checkpoint known to be in the sink (at start: the database's last)
        self.error: str | None = None
        self.since: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def failed(self, exc: OSError, now: datetime) -> None:
        reason = exc.strerror or exc.__class__.__name__  # no path: /ready's body is public
        if self.error is None:
            self.since = events.ts_ms(now)
            log.error(
                "audit checkpoint sink cannot be written (%s): /ready is failing; authentication stops "
                "after %d entries without a checkpoint in the sink",
                reason,
                self.max_backlog,
            )
        self.error = reason

    def wrote(self, seq: int) -> None:
        if self.error is not None:
            log.warning("audit checkpoint sink written again (checkpoint %d): recovered", seq)
        self.written_seq = max(self.written_seq, seq)
        self.error = self.since = None

    def refuses(self, head_seq: int) -> bool:
        """Fail closed: the sink is failing and ``max_backlog`` entries have no checkpoint in it."""
        return self.error is not None and head_seq - self.written_seq >= self.max_backlog

    async def admit(self, audit_log: AuditLog) -> None:
        """Before an authentication: refuse it (503) when :meth:`refuses`. Costs a read only while failing."""
        if self.error is None:
            return
        head_seq, _ = await audit_log.head()
        if self.refuses(head_seq):
            raise TemporarilyUnavailable(
                "the audit trail cannot be checkpointed; authentication is suspended until it can",
                debug=f"sink: {self.error}; {head_seq - self.written_seq} entries since checkpoint "
                f"{self.written_seq}",
                retry_after=SINK_RETRY_AFTER,
            )

    def status(self) -> dict[str, Any]:
        if self.error is None:
            return {"ok": True, "last_checkpoint": self.written_seq}
        return {"ok": False, "error": self.error, "since": self.since, "last_checkpoint": self.written_seq}


class Checkpointer:
    """A checkpoint every ``every`` entries or ``interval`` (if the log moved), whichever comes first.

    A checkpoint stored but not written to the sink is retried on every tick; ``health`` follows it."""

    def __init__(
        self,
        log: AuditLog,
        store: CheckpointStore,
        signer: AuditSigner,
        sink: FileSink,
        every: int,
        interval: timedelta,
        health: SinkHealth,
    ) -> None:
        self.log, self.store, self.signer, self.sink = log, store, signer, sink
        self.every, self.interval = every, interval
        self.health = health
        self.last_seq: int | None = None
        self.last_time: datetime | None = None
        self.unsunk: CheckpointRecord | None = None  # stored in the database, not yet in the sink

    async def tick(self, now: datetime, force: bool = False) -> CheckpointRecord | None:
        if self.last_seq is None:
            existing = await self.store.checkpoints()
            self.last_seq = existing[-1].seq if existing else 0
            self.health.written_seq = self.last_seq
            self.last_time = now
        if self.unsunk is not None:
            if not await self._sink(self.unsunk, now):
                return None
            force = True  # back: cover what was logged while the sink was failing
        seq, head_hash = await self.log.head()
        if seq == self.last_seq:
            return None
        due = force or seq - self.last_seq >= self.every
        due = due or (self.last_time is not None and now - self.last_time >= self.interval)
        if not due:
            return None
        cp = self.signer.sign(seq, head_hash, events.ts_ms(now), await self.log.log_id())
        stored = await self.store.add_checkpoint(cp)  # False: another process checkpointed this seq first
        self.last_seq, self.last_time = seq, now
        if stored:
            self.unsunk = cp
            await self._sink(cp, now)
        return cp

    async def _sink(self, cp: CheckpointRecord, now: datetime) -> bool:
        try:
            await asyncio.to_thread(self.sink.write, cp, self.signer.public_jwk)
        except OSError as exc:  # full, read-only, gone: recorded (and logged once), retried next tick
            self.health.failed(exc, now)
            return False
        self.unsunk = None
        self.health.wrote(cp.seq)
        return True
