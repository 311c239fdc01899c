"""Audit trail costs: append overhead inside a sign-in transaction, and verification speed.

1. Append overhead: the sign-in transaction (consume nonce + store refresh token) timed with and without
   the audit append, on SQLite and (if PORTCULLIS_TEST_DATABASE_URL is set) PostgreSQL.
2. Verification: a log of N entries (default 1,000,000) is written in bulk with a correct chain, then
   ``verify_log`` (what ``portcullis audit verify`` runs) is timed. Target: 1,000,000 entries in < 60 s.

    .venv/bin/python bench/audit_log.py [--entries 1000000] [--sign-ins 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text, update
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.audit.chain import GENESIS, entry_hash
from app.audit.checkpoints import FileSink
from app.audit.verify import verify_log
from app.storage import migrate
from app.storage.db import create_engine
from app.storage.models import AuditEntry, AuditHead, Nonce, RefreshToken
from app.storage.records import AuditRecord, RefreshRecord
from app.storage.sql import SqlStore
from app.storage.sql_audit import append
from bench.machine import machine_note


def record(i: int) -> AuditRecord:
    return AuditRecord(
        ts="2026-11-29T08:00:00.000Z",
        type="signin.succeeded",
        outcome="success",
        node="bench",
        actor=f"did:pkh:eip155:1:0x{i:040x}",
        client_id="portcullis-demo",
        request_id=f"{i:016x}",
        ip="127.0.0.0/24",
        ua_hash="a" * 64,
        session_hash="b" * 64,
        kid="k" * 43,
        data={"jti": f"{i:022d}", "scope": "openid", "chain_id": 1, "nonce_hash": "c" * 64, "amr": ["siwe"]},
    )


async def sign_in_transactions(store: SqlStore, n: int, with_audit: bool) -> float:
    """Seconds per sign-in transaction: consume a nonce, insert a refresh token, maybe append to the log."""
    now = datetime.now(UTC)
    async with store._write() as conn:
        for i in range(n):
            await conn.execute(
                insert(Nonce).values(
                    nonce_hash=f"{with_audit}{i}",
                    client_id="c",
                    issued_at=now,
                    expires_at=now + timedelta(hours=1),
                )
            )
    start = time.perf_counter()
    for i in range(n):
        async with store._write() as conn:
            await conn.execute(
                update(Nonce)
                .where(Nonce.nonce_hash == f"{with_audit}{i}", Nonce.consumed_at.is_(None))
                .values(consumed_at=now)
                .returning(Nonce.oidc_nonce)
            )
            rec = RefreshRecord(f"{with_audit}{i}", "f", "c", "s", "0x", 1, "openid", now, now, now)
            await conn.execute(insert(RefreshToken).values(**{k: getattr(rec, k) for k in rec.__slots__}))
            if with_audit:
                await append(conn, record(i), store.hasher)
    return (time.perf_counter() - start) / n


async def bulk_log(store: SqlStore, n: int) -> float:
    start = time.perf_counter()
    prev = GENESIS
    batch: list[dict[str, object]] = []
    async with store.engine.begin() as conn:
        for seq in range(1, n + 1):
            entry = record(seq).entry(seq, prev)
            digest = entry_hash(entry)
            batch.append(
                {
                    **entry,
                    "data": json.dumps(entry["data"], sort_keys=True, separators=(",", ":")),
                    "hash": digest,
                }
            )
            prev = digest
            if len(batch) == 20_000:
                await conn.execute(insert(AuditEntry), batch)
                batch = []
        if batch:
            await conn.execute(insert(AuditEntry), batch)
        await conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=n, hash=prev))
    return time.perf_counter() - start


async def run_backend(name: str, url: str, entries: int, sign_ins: int, sink_dir: Path) -> None:
    engine = create_engine(url)
    await migrate.upgrade(engine)
    store = SqlStore(engine, hasher=entry_hash)
    try:
        plain = await sign_in_transactions(store, sign_ins, with_audit=False)
        audited = await sign_in_transactions(store, sign_ins, with_audit=True)
        print(
            f"{name:<11} sign-in transaction: {plain * 1e3:6.3f} ms without audit, "
            f"{audited * 1e3:6.3f} ms with "
            f"(append overhead {(audited - plain) * 1e3:+.3f} ms, x{audited / plain:.2f})"
        )
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM audit_log"))
            await conn.execute(update(AuditHead).values(seq=0, hash=GENESIS))
        written = await bulk_log(store, entries)
        start = time.perf_counter()
        report = await verify_log(store, store, FileSink(sink_dir / f"{name}.jsonl"))
        took = time.perf_counter() - start
        verdict = "PASS" if report.ok and took < 60 * entries / 1_000_000 else "MISS"
        print(
            f"{name:<11} verify: {report.checked:,} entries in {took:.1f} s = {report.checked / took:,.0f}/s "
            f"(written in {written:.1f} s); target 1,000,000 in < 60 s: {verdict}"
        )
        assert report.ok, report.finding
    finally:
        await engine.dispose()


async def pg_database(admin: str, name: str, create: bool) -> str:
    from sqlalchemy.ext.asyncio import create_async_engine

    url = make_url(admin).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        sql = f'CREATE DATABASE "{name}"' if create else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        await conn.execute(text(sql))
    await engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--sign-ins", type=int, default=2000)
    args = parser.parse_args()
    print(f"machine: {machine_note()}")
    with tempfile.TemporaryDirectory() as tmp:
        await run_backend(
            "sqlite", f"sqlite+aiosqlite:///{tmp}/bench.db", args.entries, args.sign_ins, Path(tmp)
        )
        admin = os.environ.get("PORTCULLIS_TEST_DATABASE_URL")
        if admin:
            name = f"portcullis_bench_{uuid.uuid4().hex[:8]}"
            url = await pg_database(admin, name, create=True)
            try:
                await run_backend("postgresql", url, args.entries, args.sign_ins, Path(tmp))
            finally:
                await pg_database(admin, name, create=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
