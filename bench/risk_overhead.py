"""What the risk engine adds to a sign-in: the same sign-ins with and without it, side by side in one run.

Run: ``.venv/bin/python bench/risk_overhead.py [--pairs 300] [--history 1000] [--postgres] [--big-log N]``

1. Two apps in this process (``tests.conftest.running_app``), each on a fresh database of its own (SQLite
   files, or with ``--postgres`` fresh databases on the server at PORTCULLIS_TEST_DATABASE_URL), sharing
   one fake clock. ``with`` is the app as shipped. ``without`` is the same app with the risk engine cut
   out of the sign-in: ``app.oauth.risk.begin_assessment`` reads nothing, ``assess_sign_in`` answers a
   fixed "allow" (score 0, no signals), and ``enforce`` does nothing, for that app's requests only; and its
   database lacks the indexes that exist for the risk engine alone (``app.risk.history.INDEXES``), whose
   upkeep on every sign-in is the risk engine's cost too.
   Both first get the same ``--history`` sign-ins (so the audit log, and each wallet's history in it,
   has the size of a server that has been running a while; the clock then moves two days on, so no
   account is new), not timed. Then ``--pairs`` times one wallet signs in on both apps, the order
   alternating from pair to pair so both sides see the same machine load. One sign-in is
   ``POST /siwe/nonce`` + ``POST /siwe/verify`` (with the wallet's device id), timed around the two
   requests only (the client's signing is excluded). 40 wallets on 8 networks, each wallet always from
   its home network with its own device, the clock moving 30 s per pair: every sign-in is allowed.
   The first ``WARM_UP`` pairs are not counted. Wall-clock medians and means are printed, and process CPU
   time (all threads, so the SQLite driver's thread counts; on PostgreSQL the server's work is not in
   it). The added cost is given two ways: the difference of the medians, and the median of the
   differences within each pair (robust to load that drifts during the run); both as a share of the
   median sign-in without. The verdict needs both under the target.
2. Where the added time goes: right after each pair, on the ``with`` app, the history read
   (``sign_in_history.summary``) and ``assess`` are timed on their own.
3. Bounded reads on a large log: ``--big-log`` synthetic entries (bulk-inserted straight into
   ``audit_log``; the hash chain is not computed, the history does not read it) across 10,000 subjects,
   then ``summary`` timed for an ordinary subject (~12 entries), a brand-new subject, and a heavy one
   (2,000 entries, e.g. a bot that signs in every few minutes).

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
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from eth_account import Account
from sqlalchemy import insert, text

from app.audit.events import sha256_hex, ts_ms
from app.oauth import risk as oauth_risk
from app.risk.engine import RiskDecision, RiskSettings, assess
from app.risk.history import INDEXES, SqlSignInHistory
from app.risk.signals import RiskInput
from app.storage import migrate
from app.storage.db import create_engine
from app.storage.models import AuditEntry
from bench.machine import machine_note
from tests.conftest import (
    PG_ENV,
    FakeClock,
    Harness,
    make_settings,
    postgres_database,
    running_app,
    sign,
    siwe_text,
)

TARGET = 0.10
WARM_UP = 30
WALLETS = 40
# Eight /24 networks (what the audit log stores with the default PORTCULLIS_AUDIT_IP=truncated); the
# documentation ranges have made-up countries in the development table, the private ones none.
NETWORKS = ("198.51.100", "203.0.113", "192.0.2", "10.1.2", "10.1.3", "172.16.5", "192.168.7", "100.64.1")
STEP = 30.0  # seconds of fake time per pair
WITH, WITHOUT = "with risk engine", "without"
NO_RISK = RiskDecision(score=0, level="low", action="allow", signals=())


def _no_history_read(*_args: object) -> None:
    return None


async def _no_assessment(*_args: object) -> RiskDecision:
    return NO_RISK


async def _no_enforcement(*_args: object) -> None:
    return None


@contextlib.contextmanager
def risk_engine_removed() -> Iterator[None]:
    """The sign-in calls ``risk.begin_assessment``, ``risk.assess_sign_in`` and ``risk.enforce`` through
    the module, so inside this block they do nothing. (The audit entry still gets the zero decision, about
    60 bytes.)"""
    with (
        mock.patch.object(oauth_risk, "begin_assessment", _no_history_read),
        mock.patch.object(oauth_risk, "assess_sign_in", _no_assessment),
        mock.patch.object(oauth_risk, "enforce", _no_enforcement),
    ):
        yield


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


class Wallet:
    def __init__(self, k: int) -> None:
        self.account = Account.create()
        self.ip = f"{NETWORKS[k % len(NETWORKS)]}.{10 + k}"
        self.device = f"bench-device-{k}"
        self.subject = f"did:pkh:eip155:1:{self.account.address}"


class Side:
    """One app and an HTTP client per wallet IP on it."""

    def __init__(self, h: Harness, ips: set[str]) -> None:
        self.h = h
        self.clients = {
            ip: httpx.AsyncClient(
                transport=httpx.ASGITransport(app=h.app, client=(ip, 40000)), base_url=h.settings.issuer
            )
            for ip in ips
        }

    async def sign_in(self, wallet: Wallet, removed: bool) -> tuple[float, float]:
        """(wall, CPU) seconds of one sign-in, the client's signing excluded."""
        client = self.clients[wallet.ip]
        with risk_engine_removed() if removed else contextlib.nullcontext():
            wall, cpu = time.perf_counter(), time.process_time()
            offer = (await client.post("/siwe/nonce")).json()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            message = siwe_text(offer, wallet.account.address, issued_at=self.h.clock.now())
            signature = sign(wallet.account, message)
            wall2, cpu2 = time.perf_counter(), time.process_time()
            reply = await client.post(
                "/siwe/verify", json={"message": message, "signature": signature, "device_id": wallet.device}
            )
            wall, cpu = wall + time.perf_counter() - wall2, cpu + time.process_time() - cpu2
        if reply.status_code != 200:
            raise RuntimeError(f"sign-in failed: {reply.status_code} {reply.text}")
        return wall, cpu

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()


async def risk_work(side: Side, wallet: Wallet, settings: RiskSettings, timings: Timings) -> None:
    """The risk engine's two parts for ``wallet``'s next sign-in, each timed on its own."""
    p = side.h.app.state.provider
    now, network, device = side.h.clock.now(), p.auditor.network(wallet.ip), sha256_hex(wallet.device)
    wall, cpu = time.perf_counter(), time.process_time()
    summary = await p.sign_in_history.summary(wallet.subject, network, device, now, settings.window)
    wall2, cpu2 = time.perf_counter(), time.process_time()
    assess(
        RiskInput(wallet.subject, wallet.ip, network, device, "eoa", None, summary, now),
        settings,
        p.ip_country,
    )
    wall3, cpu3 = time.perf_counter(), time.process_time()
    timings.add("history read", wall2 - wall, cpu2 - cpu)
    timings.add("assess (pure)", wall3 - wall2, cpu3 - cpu2)


async def live(pairs: int, history: int, postgres: bool) -> tuple[Timings, int]:
    clock = FakeClock()
    wallets = [Wallet(k) for k in range(WALLETS)]
    ips = {w.ip for w in wallets}
    settings = RiskSettings()
    timings = Timings()
    async with (
        fresh_database(postgres) as (data_with, url_with),
        fresh_database(postgres) as (data_without, url_without),
        running_app(make_settings(data_with, database_url=url_with), clock) as h_with,
        running_app(make_settings(data_without, database_url=url_without), clock) as h_without,
    ):
        async with h_without.app.state.provider.store.engine.begin() as conn:
            for index in INDEXES:
                await conn.execute(text(f"DROP INDEX {index}"))
        sides = {WITH: Side(h_with, ips), WITHOUT: Side(h_without, ips)}
        try:
            for i in range(history):
                for name, side in sides.items():
                    await side.sign_in(wallets[i % WALLETS], removed=name == WITHOUT)
                clock.advance(STEP)
            clock.advance(2 * 86400)  # the history is now more than a day old: no new accounts
            for i in range(pairs + WARM_UP):
                wallet = wallets[i % WALLETS]
                order = (WITH, WITHOUT) if i % 2 == 0 else (WITHOUT, WITH)
                for name in order:
                    wall, cpu = await sides[name].sign_in(wallet, removed=name == WITHOUT)
                    if i >= WARM_UP:
                        timings.add(name, wall, cpu)
                clock.advance(STEP)
                if i >= WARM_UP:
                    await risk_work(sides[WITH], wallets[(i + 1) % WALLETS], settings, timings)
            async with h_with.app.state.provider.store.engine.connect() as conn:
                entries = int((await conn.execute(text("SELECT count(*) FROM audit_log"))).scalar_one())
        finally:
            for side in sides.values():
                await side.close()
    return timings, entries


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
            try:
                return await time_summaries(history, now, rounds)
            finally:
                await history.close()
        finally:
            await engine.dispose()


async def time_summaries(history: SqlSignInHistory, now: datetime, rounds: int) -> dict[str, float]:
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


def report(timings: Timings, entries: int, history: int) -> None:
    with_, without = timings.wall[WITH], timings.wall[WITHOUT]
    print(
        f"{len(with_)} sign-in pairs after {history} untimed ones per app "
        f"(audit log then {entries:,} entries):"
    )
    print(f"{'':<26} {'median us':>10} {'mean us':>10} {'CPU median us':>14}")
    for step, values in timings.wall.items():
        print(
            f"{step:<26} {statistics.median(values) * 1e6:>10.1f} {statistics.fmean(values) * 1e6:>10.1f} "
            f"{statistics.median(timings.cpu[step]) * 1e6:>14.1f}"
        )
    base, cpu_base = statistics.median(without), statistics.median(timings.cpu[WITHOUT])
    added = statistics.median(with_) - base
    paired = statistics.median(a - b for a, b in zip(with_, without, strict=True))
    cpu_added = statistics.median(timings.cpu[WITH]) - cpu_base
    cpu_paired = statistics.median(
        a - b for a, b in zip(timings.cpu[WITH], timings.cpu[WITHOUT], strict=True)
    )
    mean_share = statistics.fmean(with_) / statistics.fmean(without) - 1
    verdict = "PASS" if max(added, paired) / base < TARGET else "FAIL"
    print(
        f"added by the risk engine, wall: {added * 1e6:.1f} us = {added / base * 100:.1f} % (difference of "
        f"medians), {paired * 1e6:.1f} us = {paired / base * 100:.1f} % (median of pair differences), "
        f"{mean_share * 100:.1f} % (means)"
    )
    print(
        f"added by the risk engine, CPU: {cpu_added * 1e6:.1f} us = {cpu_added / cpu_base * 100:.1f} % "
        f"(difference of medians), {cpu_paired * 1e6:.1f} us = {cpu_paired / cpu_base * 100:.1f} % "
        f"(median of pair differences)"
    )
    print(f"risk / sign-in (wall): target < {TARGET * 100:.0f} %: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300, help="timed sign-ins per app")
    parser.add_argument("--history", type=int, default=1000, help="untimed sign-ins per app before")
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
    print(
        f"machine: {machine_note()}, load average {os.getloadavg()[0]:.1f}, event loop: {args.loop}, "
        f"backend: {backend}"
    )

    timings, entries = asyncio.run(live(args.pairs, args.history, args.postgres))
    report(timings, entries, args.history)

    if args.big_log:
        medians = asyncio.run(big_log(args.big_log, args.postgres, args.rounds))
        print(f"summary on a {args.big_log:,}-entry log (median of {args.rounds}):")
        for name, seconds in medians.items():
            print(f"  {name:<24} {seconds * 1e6:>8.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
