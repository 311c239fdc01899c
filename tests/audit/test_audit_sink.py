"""ASVS 16.5.3: when the write-once checkpoint sink cannot be written, /ready fails and an error is logged at
once, authentication stops after a bounded number of entries without a checkpoint in the sink, and all of
it recovers by itself once a checkpoint reaches the sink again (docs/AUDIT.md, "When the sink fails")."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from app.audit.checkpoints import FileSink
from app.audit.verify import verify_log
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text


async def _sign_in(h: Harness) -> httpx.Response:
    wallet = Account.create()
    offer = (await h.client.post("/siwe/nonce")).json()
    message = siwe_text(offer, wallet.address, issued_at=h.clock.now())
    return await h.client.post("/siwe/verify", json={"message": message, "signature": sign(wallet, message)})


async def _until(h: Harness, status: int) -> httpx.Response:
    """/ready as soon as it answers ``status`` (the checkpointer ticks once a second), within 10 s."""
    deadline = time.monotonic() + 10
    while True:
        ready = await h.client.get("/ready")
        if ready.status_code == status or time.monotonic() > deadline:
            return ready
        await asyncio.sleep(0.1)


async def _head(h: Harness) -> int:
    seq, _ = await h.app.state.provider.audit_log.head()
    return int(seq)


def test_backlog_defaults_to_the_checkpoint_interval(tmp_path: Path) -> None:
    assert make_settings(tmp_path, audit_checkpoint_every=250).audit_sink_max_backlog == 250
    assert make_settings(tmp_path, audit_sink_max_backlog=7).audit_sink_max_backlog == 7


async def test_full_sink_fails_ready_then_authentication_then_recovers(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = tmp_path / "sink.jsonl"
    sink.symlink_to("/dev/full")  # the configured sink path, on a device that is always full
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        audit_checkpoint_file=sink,
        audit_checkpoint_every=3,
        audit_checkpoint_seconds=3600,  # only the entry count makes checkpoints here
        audit_sink_max_backlog=6,
    )
    caplog.set_level(logging.ERROR, logger="portcullis.audit")
    async with running_app(settings, FakeClock()) as h:
        ready = await h.client.get("/ready")
        assert ready.status_code == 200 and ready.json()["audit_sink"] == {"ok": True, "last_checkpoint": 0}
        first = await _sign_in(h)
        assert first.status_code == 200
        refresh = first.json()["refresh_token"]
        assert await _head(h) >= 3  # a checkpoint is due: the checkpointer tries the sink

        # /ready fails at once, with the reason; the error is in the log
        ready = await _until(h, 503)
        assert ready.status_code == 503 and ready.headers["retry-after"]
        body = ready.json()
        assert body["error"] == "temporarily_unavailable"
        assert "audit checkpoint sink cannot be written: No space left on device" in body["error_description"]
        assert body["audit_sink"]["ok"] is False and body["audit_sink"]["last_checkpoint"] == 0
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "sink cannot be written" in errors[0].getMessage()

        # sign-ins go on while fewer than audit_sink_max_backlog entries lack a checkpoint in the sink
        admitted = 0
        while await _head(h) < 6:
            assert (await _sign_in(h)).status_code == 200
            admitted += 1
        assert admitted >= 1
        # then authentication is refused, sign-in and token endpoint alike, until the sink works again
        refused = await _sign_in(h)
        assert refused.status_code == 503 and refused.json()["error"] == "temporarily_unavailable"
        assert refused.headers["retry-after"] == "5" and "access_token" not in refused.text
        form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "portcullis-demo"}
        token = await h.client.post("/token", data=form)
        assert token.status_code == 503 and token.headers["retry-after"]
        assert (
            await _head(h) - 6 <= 2
        )  # refused requests add no entries beyond the bound (nonces: sampled off)
        assert (
            len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
        )  # logged once, not per tick

        # the path is writable again: the next tick writes the checkpoint, everything recovers
        sink.unlink()
        sink.touch()
        ready = await _until(h, 200)
        assert ready.status_code == 200 and ready.json()["audit_sink"]["ok"] is True
        assert (await _sign_in(h)).status_code == 200
        assert (await h.client.post("/token", data=form)).status_code == 200
        written, _ = FileSink(sink).read()
        assert written and written[-1].seq >= 6  # the entries logged while it was failing are covered
        p = h.app.state.provider
        report = await verify_log(p.audit_log, p.checkpoint_store, FileSink(sink))
        assert report.ok, report


async def test_no_checkpoint_due_means_no_refusal(harness: Harness) -> None:
    """A healthy sink never refuses, however many entries wait for the next checkpoint."""
    for _ in range(3):
        assert (await _sign_in(harness)).status_code == 200
    state: Any = harness.app.state.provider.audit_sink
    assert state.ok and not state.refuses(await _head(harness) + 10**6)
