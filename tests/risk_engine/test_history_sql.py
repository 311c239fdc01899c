"""SqlSignInHistory over the audit log filled by real sign-ins, on SQLite and PostgreSQL.

The app runs in-process; sign-ins and refusals go through its HTTP endpoints from chosen client addresses,
so the audit log holds what production writes (truncated /24 networks by default). Entries with chosen
``data.device`` values are appended through the app's own audit log.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

from app.audit import events
from app.audit.events import ts_ms
from app.risk.history import EMPTY_HISTORY, SqlSignInHistory, summary_statement
from app.risk.readers import PreparedRead
from app.storage.models import SIGN_IN_ENTRIES
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text

US = "198.51.100.7"
US_NEIGHBOUR = "198.51.100.8"
DE = "203.0.113.9"
US_NET, DE_NET, OTHER_NET = "198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"
HOUR = timedelta(hours=1)


def did(account: Any) -> str:
    return f"did:pkh:eip155:1:{account.address}"


class Browser:
    """An HTTP client on the running app that appears to come from ``ip``."""

    def __init__(self, h: Harness, ip: str) -> None:
        self.h = h
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=h.app, client=(ip, 40000), raise_app_exceptions=False),
            base_url=h.settings.issuer,
        )

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def sign_in(self, account: Any, *, signer: Any = None) -> int:
        offer = (await self.client.post("/siwe/nonce")).json()
        message = siwe_text(offer, account.address, issued_at=self.h.clock.now())
        reply = await self.client.post(
            "/siwe/verify", json={"message": message, "signature": sign(signer or account, message)}
        )
        return reply.status_code


def history_of(h: Harness) -> SqlSignInHistory:
    """The app's own history (its readers are given back when the app stops)."""
    history: SqlSignInHistory = h.app.state.provider.sign_in_history
    return history


async def record_device_sign_in(h: Harness, subject: str, ip: str, device: str) -> None:
    provider = h.app.state.provider
    await provider.audit_log.record(
        provider.auditor.event(
            events.SIGNIN_SUCCEEDED,
            events.SUCCESS,
            events.RequestMeta(ip=ip),
            actor=subject,
            client_id="portcullis-demo",
            data={"device": device, "wallet": "eoa"},
        )
    )


async def test_summary_counts_networks_and_first_seen(tmp_path: Path, database_url: str) -> None:
    clock = FakeClock()
    alice, bob, mallory = Account.create(), Account.create(), Account.create()
    async with running_app(make_settings(tmp_path, database_url=database_url), clock) as h:
        first = clock.now()
        async with Browser(h, US) as us, Browser(h, US_NEIGHBOUR) as neighbour, Browser(h, DE) as de:
            assert await us.sign_in(alice) == 200  # outside the window below
            clock.advance(2 * 3600)
            assert await us.sign_in(alice) == 200
            clock.advance(10)
            assert await de.sign_in(alice) == 200
            assert await neighbour.sign_in(bob) == 200  # same /24 network, another subject
            assert await us.sign_in(alice, signer=mallory) == 401  # refused: names alice, from US_NET
            assert await us.sign_in(alice, signer=mallory) == 401
            assert await de.sign_in(bob, signer=mallory) == 401
            clock.advance(60)
            now = clock.now()

        history = history_of(h)
        summary = await history.summary(did(alice), US_NET, None, now, HOUR)
        assert summary.first_seen == first
        assert summary.network_known and not summary.device_known
        assert summary.successes_by_subject == 2  # the first sign-in is older than the window
        assert summary.failures_by_subject == 2
        assert summary.successes_by_network == 2  # alice's recent one and bob's
        assert summary.failures_by_network == 2

        summary = await history.summary(did(alice), DE_NET, None, now, 3 * HOUR)
        assert summary.network_known
        assert (summary.successes_by_subject, summary.successes_by_network) == (3, 1)
        assert (summary.failures_by_subject, summary.failures_by_network) == (2, 1)

        # The same read on a connection the caller holds (inside a transaction of its own).
        async with history.engine.begin() as conn:
            assert await history.summary_on(
                conn, did(alice), US_NET, None, now, HOUR
            ) == await history.summary(did(alice), US_NET, None, now, HOUR)

        # bob: one success, one refusal in his name; the network of the sign-in being assessed is new.
        summary = await history.summary(did(bob), OTHER_NET, None, now, HOUR)
        assert not summary.network_known
        assert (await history.summary(did(bob), US_NET, None, now, HOUR)).network_known
        assert (summary.successes_by_subject, summary.failures_by_subject) == (1, 1)
        assert (summary.successes_by_network, summary.failures_by_network) == (0, 0)

        # mallory only signed messages for others: no history of her own.
        summary = await history.summary(did(mallory), None, None, now, HOUR)
        assert summary == EMPTY_HISTORY
        # a refusal does not make a network known
        summary = await history.summary(did(bob), DE_NET, None, now, HOUR)
        assert not summary.network_known and summary.failures_by_network == 1


async def test_devices_come_from_the_sign_in_entries(tmp_path: Path, database_url: str) -> None:
    clock = FakeClock()
    alice = Account.create()
    subject = did(alice)
    async with running_app(make_settings(tmp_path, database_url=database_url), clock) as h:
        await record_device_sign_in(h, subject, US, "dev_1%")  # LIKE metacharacters in a device id
        clock.advance(3 * 3600)
        await record_device_sign_in(h, subject, DE, 'dev-2"\\')  # JSON escapes in a device id
        now = clock.now()

        history = history_of(h)
        summary = await history.summary(subject, US_NET, "dev_1%", now, HOUR)
        assert summary.device_known and summary.network_known
        assert summary.first_seen == now - timedelta(hours=3)
        assert (await history.summary(subject, OTHER_NET, 'dev-2"\\', now, HOUR)).device_known
        # ... and only that exact one: no pattern matching, no case folding, no prefixes.
        for lookalike in ("devX1%", "dev_1", "dev_1%x", "dev", "DEV_1%", "dev-2", "%", "_"):
            summary = await history.summary(subject, OTHER_NET, lookalike, now, HOUR)
            assert not summary.device_known, lookalike
        # A device the subject used on a refused attempt only is not known.
        provider = h.app.state.provider
        await provider.audit_log.record(
            provider.auditor.event(
                events.SIGNIN_FAILED,
                events.FAILURE,
                events.RequestMeta(ip=US),
                actor=subject,
                data={"device": "dev-3"},
            )
        )
        assert not (await history.summary(subject, US_NET, "dev-3", now, HOUR)).device_known


async def test_network_counts_cover_the_whole_window_and_only_it(tmp_path: Path, database_url: str) -> None:
    clock = FakeClock()
    alice, bob, mallory = Account.create(), Account.create(), Account.create()
    async with running_app(make_settings(tmp_path, database_url=database_url), clock) as h:
        async with Browser(h, US) as us:
            assert await us.sign_in(alice) == 200  # 61 minutes before the assessment: outside
            clock.advance(60)
            assert await us.sign_in(alice, signer=mallory) == 401  # 60 minutes before: inside
            clock.advance(1800)
            for _ in range(3):
                assert await us.sign_in(bob) == 200
            # other entries from the network (a refresh) are not sign-ins
            provider = h.app.state.provider
            await provider.audit_log.record(
                provider.auditor.event(events.TOKEN_REFRESHED, events.SUCCESS, events.RequestMeta(ip=US))
            )
        clock.advance(1800)
        summary = await history_of(h).summary(did(alice), US_NET, None, clock.now(), HOUR)
        assert (summary.successes_by_network, summary.failures_by_network) == (3, 1)
        assert (summary.successes_by_subject, summary.failures_by_subject) == (0, 1)
        # counted no further than the cap
        capped = SqlSignInHistory(h.app.state.provider.store.engine, count_cap=2)
        try:
            summary = await capped.summary(did(bob), US_NET, None, clock.now(), HOUR)
        finally:
            await capped.close()
        assert (summary.successes_by_network, summary.failures_by_network) == (2, 1)
        assert (summary.successes_by_subject, summary.failures_by_subject) == (2, 0)


async def test_the_read_is_bounded_by_indexes(tmp_path: Path, database_url: str) -> None:
    """The subject's counts from ``ix_audit_log_signin_subject`` alone (its device through the same index),
    the network's from ``ix_audit_log_signin_network`` alone: no scan of the log, however large it grows."""
    async with running_app(make_settings(tmp_path, database_url=database_url), FakeClock()) as h:
        history = history_of(h)
        read = PreparedRead(summary_statement(history.engine.dialect), history.engine.dialect)
        now = h.clock.now()
        params = {
            "subject": "did:pkh:eip155:1:0x0",
            "network": US_NET,
            "device_member": "x",
            "since": ts_ms(now),
        }
        args = read.args(params)
        async with history.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            if history.engine.dialect.name == "sqlite":
                plan = " | ".join(
                    row[3] for row in await driver.execute_fetchall("EXPLAIN QUERY PLAN " + read.sql, args)
                )
                searches = [step for step in plan.split(" | ") if step.startswith("SEARCH")]
                subject, network = "ix_audit_log_signin_subject (actor=?", "ix_audit_log_signin_network (ip=?"
                assert searches == [
                    f"SEARCH audit_log USING COVERING INDEX {subject} AND type=?)",  # first seen
                    f"SEARCH audit_log USING COVERING INDEX {subject} AND type=? AND ts>?)",  # successes
                    f"SEARCH audit_log USING COVERING INDEX {subject} AND type=? AND ts>?)",  # refusals
                    f"SEARCH audit_log USING COVERING INDEX {subject} AND type=?)",  # network known
                    f"SEARCH audit_log USING COVERING INDEX {network} AND type=? AND ts>?)",
                    f"SEARCH audit_log USING COVERING INDEX {network} AND type=? AND ts>?)",
                    f"SEARCH audit_log USING INDEX {subject} AND type=?)",  # the device, from the rows
                ]
                assert "SCAN audit_log" not in plan and "TEMP B-TREE" not in plan  # no sort either
            else:
                # A near-empty table is cheapest to scan; forbid that to see the plan a large log gets. The
                # held readers run the generic plan (app.risk.readers): that is the one to check.
                await driver.execute("SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan")
                await driver.execute(f"PREPARE risk_summary AS {read.sql}")
                values = ", ".join("NULL" if arg is None else f"'{arg}'" for arg in args)
                plan = " | ".join(
                    row[0] for row in await driver.fetch(f"EXPLAIN EXECUTE risk_summary({values})")
                )
                await driver.execute("DEALLOCATE risk_summary; RESET enable_seqscan; RESET plan_cache_mode")
                assert "Seq Scan" not in plan and "Sort" not in plan
                assert "$1" in plan  # the generic plan indeed, made on a nearly empty log
                # Each index only for its own reads, which lead with its first column: 5 by subject, 2 by
                # network (a plan made on a new log, without statistics, must not mix them up).
                lines = plan.split(" | ")
                scans = [
                    (line, lines[n + 1])
                    for n, line in enumerate(lines)
                    if "using ix_audit_log_signin" in line
                ]
                by = [("subject" if "signin_subject" in scan else "network", cond) for scan, cond in scans]
                assert sorted(kind for kind, _ in by) == ["network"] * 2 + ["subject"] * 5
                for kind, cond in by:
                    leading = cond.split("Index Cond: ", 1)[1].split(" AND ")[0]
                    assert ("actor" if kind == "subject" else "ip") in leading, (kind, cond)


def test_the_indexed_entries_are_the_sign_in_events() -> None:
    assert SIGN_IN_ENTRIES == (events.SIGNIN_SUCCEEDED, events.SIGNIN_FAILED)
