"""SqlSignInHistory over the audit log filled by real sign-ins, on SQLite and PostgreSQL.

The app runs in-process; sign-ins and refusals go through its HTTP endpoints from chosen client addresses,
so the audit log holds what production writes (truncated /24 networks by default). Device ids are not yet
written by the sign-in endpoint, so entries carrying ``data.device`` are appended through the app's own
audit log.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

from app.audit import events
from app.risk.history import SqlSignInHistory
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


def history_of(h: Harness, **options: Any) -> SqlSignInHistory:
    return SqlSignInHistory(h.app.state.provider.store.engine, **options)


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
            window_start = clock.now()
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
        assert summary.known_networks == {US_NET, DE_NET}
        assert summary.known_devices == frozenset()
        assert summary.successes_by_subject == 2  # the first sign-in is older than the window
        assert summary.failures_by_subject == 2
        assert summary.successes_by_network == 2  # alice's recent one and bob's
        assert summary.failures_by_network == 2

        summary = await history.summary(did(alice), DE_NET, None, now, 3 * HOUR)
        assert (summary.successes_by_subject, summary.successes_by_network) == (3, 1)
        assert (summary.failures_by_subject, summary.failures_by_network) == (2, 1)

        # The same read on a connection the caller holds (inside a transaction of its own).
        async with history.engine.begin() as conn:
            assert await history.summary_on(
                conn, did(alice), US_NET, None, now, HOUR
            ) == await history.summary(did(alice), US_NET, None, now, HOUR)

        # Per-method reads agree with the summary.
        assert await history.first_seen(did(alice)) == first
        places = await history.known_places(did(alice), first)
        assert places.networks == {US_NET, DE_NET} and places.devices == frozenset()
        later = await history.known_places(did(alice), window_start + timedelta(seconds=1))
        assert later.networks == {DE_NET}
        activity = await history.subject_activity(did(alice), now - HOUR)
        assert (activity.successes, activity.failures) == (2, 2)
        activity = await history.network_activity(US_NET, now - HOUR)
        assert (activity.successes, activity.failures) == (2, 2)

        # bob: one success, one refusal in his name; the network of the sign-in being assessed is new.
        summary = await history.summary(did(bob), OTHER_NET, None, now, HOUR)
        assert summary.known_networks == {US_NET}
        assert (summary.successes_by_subject, summary.failures_by_subject) == (1, 1)
        assert (summary.successes_by_network, summary.failures_by_network) == (0, 0)

        # mallory only signed messages for others: no history of her own.
        summary = await history.summary(did(mallory), None, None, now, HOUR)
        assert summary.first_seen is None and summary.known_networks == frozenset()
        assert (summary.successes_by_subject, summary.failures_by_subject) == (0, 0)
        assert (summary.successes_by_network, summary.failures_by_network) == (0, 0)
        assert await history.first_seen(did(mallory)) is None


async def test_devices_come_from_the_sign_in_entries(tmp_path: Path, database_url: str) -> None:
    clock = FakeClock()
    alice = Account.create()
    subject = did(alice)
    async with running_app(make_settings(tmp_path, database_url=database_url), clock) as h:
        await record_device_sign_in(h, subject, US, "dev_1%")  # LIKE metacharacters in a device id
        clock.advance(3 * 3600)
        await record_device_sign_in(h, subject, DE, "dev-2")
        now = clock.now()

        history = history_of(h)
        summary = await history.summary(subject, US_NET, "dev-2", now, HOUR)
        assert summary.known_devices == {"dev_1%", "dev-2"}
        assert summary.first_seen == now - timedelta(hours=3)

        # Listing bounded to the last hour; the device being assessed is still found however old it is.
        recent_only = history_of(h, remember=HOUR)
        summary = await recent_only.summary(subject, OTHER_NET, None, now, HOUR)
        assert summary.known_devices == {"dev-2"} and summary.known_networks == {DE_NET}
        summary = await recent_only.summary(subject, US_NET, "dev_1%", now, HOUR)
        assert summary.known_devices == {"dev_1%", "dev-2"} and summary.known_networks == {US_NET, DE_NET}
        # ... and only that exact one: the metacharacters are matched literally.
        for lookalike in ("devX1%", "dev_1", "dev_1%x", "dev"):
            summary = await recent_only.summary(subject, OTHER_NET, lookalike, now, HOUR)
            assert summary.known_devices == {"dev-2"}, lookalike


async def test_network_counts_look_only_at_the_newest_entries(tmp_path: Path, sqlite_url: str) -> None:
    clock = FakeClock()
    alice, bob = Account.create(), Account.create()
    async with running_app(make_settings(tmp_path, database_url=sqlite_url), clock) as h:
        async with Browser(h, US) as us:
            for _ in range(3):
                assert await us.sign_in(alice) == 200
            assert await us.sign_in(bob) == 200
        now = clock.now()
        assert (await history_of(h).summary(did(alice), US_NET, None, now, HOUR)).successes_by_network == 4
        short = history_of(h, tail=2)
        assert (await short.summary(did(alice), US_NET, None, now, HOUR)).successes_by_network == 2
        assert (await short.network_activity(US_NET, now - HOUR)).successes == 2
        # the subject's own counts are not bounded by the tail
        assert (await short.summary(did(alice), US_NET, None, now, HOUR)).successes_by_subject == 3
