"""Signed audit checkpoints: "the log had SEQ entries ending in HEAD_HASH at TS", signed Ed25519 (RFC 8037).

A checkpoint is written to the database and appended to a write-once sink (a JSON-lines file by default),
so deleting the tail of the log, or the log's own checkpoints, is detectable against the sink.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from app.audit import events
from app.audit.chain import Checkpoint
from app.oidc.keys import decrypt_private_key, generate_key
from app.storage.records import AuditLog, CheckpointRecord, CheckpointStore


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


class Checkpointer:
    """A checkpoint every ``every`` entries or ``interval`` (if the log moved), whichever comes first."""

    def __init__(
        self,
        log: AuditLog,
        store: CheckpointStore,
        signer: AuditSigner,
        sink: FileSink,
        every: int,
        interval: timedelta,
    ) -> None:
        self.log, self.store, self.signer, self.sink = log, store, signer, sink
        self.every, self.interval = every, interval
        self.last_seq: int | None = None
        self.last_time: datetime | None = None

    async def tick(self, now: datetime, force: bool = False) -> CheckpointRecord | None:
        if self.last_seq is None:
            existing = await self.store.checkpoints()
            self.last_seq = existing[-1].seq if existing else 0
            self.last_time = now
        seq, head_hash = await self.log.head()
        if seq == self.last_seq:
            return None
        due = force or seq - self.last_seq >= self.every
        due = due or (self.last_time is not None and now - self.last_time >= self.interval)
        if not due:
            return None
        cp = self.signer.sign(seq, head_hash, events.ts_ms(now), await self.log.log_id())
        if await self.store.add_checkpoint(cp):  # False: another process checkpointed this seq first
            await asyncio.to_thread(self.sink.write, cp, self.signer.public_jwk)
        self.last_seq, self.last_time = seq, now
        return cp
