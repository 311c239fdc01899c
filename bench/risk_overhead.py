"""What the risk engine adds to a sign-in: ``SqlSignInHistory.summary`` + ``assess``, against the sign-in.

Run: ``.venv/bin/python bench/risk_overhead.py [--signins 200] [--postgres] [--big-log 200000]``

1. Per sign-in, in the live app: ``tests.conftest.running_app`` (a fresh SQLite file, or with
   ``--postgres`` a fresh database on the server at PORTCULLIS_TEST_DATABASE_URL), ``--signins`` complete
   sign-ins (``POST /siwe/nonce`` + ``POST /siwe/verify``, timed around the two requests only; the
   client's signing is excluded) by 20 wallets from 4 networks. Right after each sign-in, on the same app
   and database, the risk work for that wallet's next sign-in is timed: ``summary`` (one statement) then
   ``assess`` (pure); as a yardstick, the cheapest possible database visit (check out a connection,
   ``SELECT 1``, give it back); and ``summary_on`` alone on a connection already in use, which is what the
   risk read costs when folded into a database visit the sign-in makes anyway. Interleaving puts all of
   them under the same machine load. The first 20
   sign-ins warm up and are not counted. Wall-clock medians and means are printed, and the process CPU
   time (all threads, so the SQLite driver's thread counts); the verdict is on the ratio of medians.
2. Bounded reads on a large log: ``--big-log`` synthetic entries (bulk-inserted straight into
   ``audit_log``; the hash chain is not computed, the history does not read it) across 10,000 subjects,
   then ``summary`` timed for an ordinary subject (~12 entries), a brand-new subject, and a heavy one
   (2,000 entries, e.g. a bot that signs in every few minutes): the cost follows the subject's own
   entries and the ``tail``, not the size of the log.

Target: the risk engine's cost per sign-in < 10 % of the sign-in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from eth_account import Account
from sqlalchemy import insert, text

from app.audit.events import ts_ms
from app.risk.engine import RiskSettings, assess
from app.risk.geo import StaticCidrTable
from app.risk.history import SqlSignInHistory
from app.risk.signals import RiskInput
from app.storage import migrate
from app.storage.db import create_engine
from app.storage.models import AuditEntry
from bench.machine import machine_note
from tests.conftest import PG_ENV, FakeClock, make_settings, postgres_database, running_app, sign, siwe_text

TARGET = 0.10
WARM_UP = 20
IPS = ("198.51.100.7", "203.0.113.9", "192.0.2.1", "10.1.2.3")


def network_of(ip: str) -> str:
    """What the audit log stores for ``ip`` with the default PORTCULLIS_AUDIT_IP=truncated."""
    return ip.rsplit(".", 1)[0] + ".0/24"


@contextlib.asynccontextmanager
async def fresh_database(postgres: bool) -> AsyncIterator[tuple[Path, str]]:
    """(a temporary data directory, the URL of an empty database), both removed afterwards."""
    with tempfile.TemporaryDirectory() as data:
        if not postgres:
            yield Path(data), f"sqlite+aiosqlite:///{data}/bench.db"
            return
        async with postgres_database() as url:
            yield Path(data), url


class Timings:
    """Wall-clock and process CPU seconds per measured step."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def add(self, step: str, wall: float, cpu: float) -> None:
        self.wall.setdefault(step, []).append(wall)
        self.cpu.setdefault(step, []).append(cpu)


async def live(signins: int, postgres: bool) -> Timings:
    clock = FakeClock()
    wallets = [Account.create() for _ in range(20)]
    settings, geo = RiskSettings(), StaticCidrTable.development()
    timings = Timings()
    async with (
        fresh_database(postgres) as (data, url),
        running_app(make_settings(data, database_url=url), clock) as h,
    ):
        engine = h.app.state.provider.store.engine
        history = SqlSignInHistory(engine)
        clients = {
            ip: httpx.AsyncClient(
                transport=httpx.ASGITransport(app=h.app, client=(ip, 40000)), base_url=h.settings.issuer
            )
            for ip in IPS
        }
        try:
            for i in range(signins + WARM_UP):
                wallet, ip = wallets[i % len(wallets)], IPS[(i // len(wallets)) % len(IPS)]
                client = clients[ip]
                wall, cpu = time.perf_counter(), time.process_time()
                offer = (await client.post("/siwe/nonce")).json()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                message = siwe_text(offer, wallet.address, issued_at=clock.now())
                signature = sign(wallet, message)
                wall2, cpu2 = time.perf_counter(), time.process_time()
                reply = await client.post("/siwe/verify", json={"message": message, "signature": signature})
                wall, cpu = wall + time.perf_counter() - wall2, cpu + time.process_time() - cpu2
                if reply.status_code != 200:
                    raise RuntimeError(f"sign-in failed: {reply.status_code} {reply.text}")
                clock.advance(7)
                counted = i >= WARM_UP
                if counted:
                    timings.add("sign-in (nonce+verify)", wall, cpu)

                subject, network = f"did:pkh:eip155:1:{wallet.address}", network_of(ip)
                wall, cpu = time.perf_counter(), time.process_time()
                summary = await history.summary(
                    subject, network, "bench-device", clock.now(), settings.window
                )
                wall2, cpu2 = time.perf_counter(), time.process_time()
                assess(
                    RiskInput(subject, ip, network, "bench-device", "eoa", "US", summary, clock.now()),
                    settings,
                    geo,
                )
                wall3, cpu3 = time.perf_counter(), time.process_time()
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                wall4, cpu4 = time.perf_counter(), time.process_time()
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))  # the visit is under way: only the statement counts
                    wall5, cpu5 = time.perf_counter(), time.process_time()
                    await history.summary_on(
                        conn, subject, network, "bench-device", clock.now(), settings.window
                    )
                    wall6, cpu6 = time.perf_counter(), time.process_time()
                if counted:
                    timings.add("history summary", wall2 - wall, cpu2 - cpu)
                    timings.add("assess (pure)", wall3 - wall2, cpu3 - cpu2)
                    timings.add("risk total", wall3 - wall, cpu3 - cpu)
                    timings.add("yardstick: SELECT 1", wall4 - wall3, cpu4 - cpu3)
                    timings.add("summary_on open conn.", wall6 - wall5, cpu6 - cpu5)
        finally:
            for client in clients.values():
                await client.aclose()
    return timings


def synthetic_rows(count: int, now: datetime) -> list[dict[str, Any]]:
    """``count`` sign-in-like entries over the last ``count`` * 2 s: 10,000 subjects, 4 event types."""
    kinds = ("signin.succeeded",) * 6 + ("signin.failed",) * 2 + ("token.refreshed",) * 2
    rows = []
    for seq in range(1, count + 1):
        kind = kinds[seq % len(kinds)]
        rows.append(
            {
                "seq": seq,
                "ts": ts_ms(now - timedelta(seconds=2 * (count - seq))),
                "type": kind,
                "outcome": "failure" if kind == "signin.failed" else "success",
                "actor": f"did:pkh:eip155:1:0x{seq % 10_000:040x}",
                "ip": f"10.{seq % 7}.{seq % 11}.0/24",
                "node": "bench",
                "data": json.dumps({"device": f"d{seq % 3}", "jti": f"{seq:022d}"}, separators=(",", ":")),
                "prev_hash": "0" * 64,
                "hash": "0" * 64,
            }
        )
    heavy = "did:pkh:eip155:1:0x" + "b" * 40
    for k in range(2000):  # the heavy subject's entries, spread over the same period
        row = dict(rows[(k * (count // 2000)) % count])
        row.update(seq=count + 1 + k, actor=heavy, type="signin.succeeded", outcome="success")
        rows.append(row)
    return rows


async def big_log(entries: int, postgres: bool, rounds: int) -> dict[str, float]:
    """Median ``summary`` seconds per kind of subject on a log of ``entries`` synthetic entries."""
    now = datetime.now(UTC)
    async with fresh_database(postgres) as (_, url):
        engine = create_engine(url)
        try:
            await migrate.upgrade(engine)
            rows = synthetic_rows(entries, now)
            async with engine.begin() as conn:
                for first in range(0, len(rows), 10_000):
                    await conn.execute(insert(AuditEntry), rows[first : first + 10_000])
                if engine.dialect.name == "postgresql":  # what autovacuum would have done by now
                    await conn.execute(text("ANALYZE audit_log"))
            history = SqlSignInHistory(engine)
            subjects = {
                "ordinary (~12 entries)": "did:pkh:eip155:1:0x" + f"{42:040x}",
                "new (no entries)": "did:pkh:eip155:1:0x" + "c" * 40,
                "heavy (2,000 entries)": "did:pkh:eip155:1:0x" + "b" * 40,
            }
            times: dict[str, list[float]] = {name: [] for name in subjects}
            for i in range(rounds + WARM_UP):
                for name, subject in subjects.items():
                    start = time.perf_counter()
                    await history.summary(subject, "10.1.2.0/24", "d1", now, timedelta(hours=1))
                    if i >= WARM_UP:
                        times[name].append(time.perf_counter() - start)
            return {name: statistics.median(values) for name, values in times.items()}
        finally:
            await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--signins", type=int, default=200)
    parser.add_argument("--postgres", action="store_true", help=f"PostgreSQL at ${PG_ENV} instead of SQLite")
    parser.add_argument("--big-log", type=int, default=200_000, help="entries in the large log (0: skip)")
    parser.add_argument("--rounds", type=int, default=200, help="summaries per subject on the large log")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    if args.postgres and not os.environ.get(PG_ENV):
        parser.error(f"--postgres needs {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    if args.loop == "uvloop":  # what `portcullis serve` runs on (uvicorn[standard] picks uvloop)
        import uvloop

        uvloop.install()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"machine: {machine_note()}, event loop: {args.loop}, backend: {backend}")

    timings = asyncio.run(live(args.signins, args.postgres))
    signin = timings.wall["sign-in (nonce+verify)"]
    print(f"{len(signin)} sign-ins, each followed by the risk work for that wallet's next sign-in:")
    print(f"{'':<24} {'median us':>10} {'mean us':>10} {'CPU median us':>14}")
    for step, values in timings.wall.items():
        print(
            f"{step:<24} {statistics.median(values) * 1e6:>10.1f} {statistics.fmean(values) * 1e6:>10.1f} "
            f"{statistics.median(timings.cpu[step]) * 1e6:>14.1f}"
        )
    risk = timings.wall["risk total"]
    share = statistics.median(risk) / statistics.median(signin)
    mean_share = statistics.fmean(risk) / statistics.fmean(signin)
    cpu_share = statistics.median(timings.cpu["risk total"]) / statistics.median(
        timings.cpu["sign-in (nonce+verify)"]
    )
    floor_share = statistics.median(timings.wall["yardstick: SELECT 1"]) / statistics.median(signin)
    verdict = "PASS" if share < TARGET else "FAIL"
    print(
        f"risk / sign-in: {share * 100:.1f} % (wall, medians), {mean_share * 100:.1f} % (wall, means), "
        f"{cpu_share * 100:.1f} % (CPU, medians); target < {TARGET * 100:.0f} %: {verdict}"
    )
    folded = timings.wall["summary_on open conn."]
    folded_share = (
        statistics.median(folded) + statistics.median(timings.wall["assess (pure)"])
    ) / statistics.median(signin)
    print(f"(one bare database visit, SELECT 1, is already {floor_share * 100:.1f} % of a sign-in)")
    print(
        f"folded into a database visit the sign-in makes anyway (summary_on + assess): "
        f"{folded_share * 100:.1f} % (wall, medians)"
    )

    if args.big_log:
        medians = asyncio.run(big_log(args.big_log, args.postgres, args.rounds))
        print(f"summary on a {args.big_log:,}-entry log (median of {args.rounds}):")
        for name, seconds in medians.items():
            print(f"  {name:<24} {seconds * 1e6:>8.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
