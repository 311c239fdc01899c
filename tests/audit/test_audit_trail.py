"""Every security decision lands in the log, in the same transaction, with no secrets, on both backends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from eth_account import Account

from app.audit.verify import verify_log
from tests.audit.tamper import rows
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text


async def _sign_in(h: Harness, wallet: Any, **extra: Any) -> Any:
    offer = (await h.client.post("/siwe/nonce", headers={"X-Request-Id": "req-123"})).json()
    message = siwe_text(offer, wallet.address, issued_at=h.clock.now())
    body = {"message": message, "signature": sign(wallet, message), **extra}
    return await h.client.post("/siwe/verify", json=body, headers={"User-Agent": "pytest-wallet/1"}), body


async def test_sign_in_success_and_failure_are_recorded(
    database_url: str, tmp_path: Path, wallet: Any
) -> None:
    clock = FakeClock()
    async with running_app(make_settings(tmp_path, database_url=database_url), clock) as h:
        engine = h.app.state.provider.store.engine
        reply, body = await _sign_in(h, wallet)
        assert reply.status_code == 200
        tokens = reply.json()
        forged = dict(body, signature=sign(Account.create(), body["message"]))
        assert (await h.client.post("/siwe/verify", json=forged)).status_code == 401
        log = await rows(engine)
        kinds = [r["type"] for r in log]
        assert kinds[:2] == ["audit.key_created", "key.activated"]
        ok = next(r for r in log if r["type"] == "signin.succeeded")
        assert ok["outcome"] == "success" and ok["actor"] == f"did:pkh:eip155:1:{wallet.address}"
        assert ok["client_id"] == "portcullis-demo" and ok["kid"] and ok["session_hash"]
        assert ok["ua_hash"] and ok["ip"] and ok["request_id"]
        data = json.loads(ok["data"])
        access = __import__("jwt").decode(tokens["access_token"], options={"verify_signature": False})
        assert data["jti"] == access["jti"] and data["scope"] == "openid"
        bad = next(r for r in log if r["type"] == "signin.failed")
        assert bad["outcome"] == "failure" and bad["reason"] == "invalid_signature"
        assert bad["actor"] == f"did:pkh:eip155:1:{wallet.address}"  # claimed, recorded for forensics
        # secrets never reach the log: not the nonce, the signature, the message or any token
        dump = json.dumps(log, default=str)
        offer_nonce = body["message"].split("Nonce: ")[1].split("\n")[0]
        for secret in (offer_nonce, body["signature"][2:], tokens["refresh_token"], tokens["access_token"]):
            assert secret not in dump
        report = await verify_log(
            h.app.state.provider.audit_log,
            h.app.state.provider.checkpoint_store,
            __import__("app.audit.checkpoints", fromlist=["FileSink"]).FileSink(
                h.settings.audit_checkpoint_file
            ),
        )
        assert report.ok and report.checked == len(log)


async def test_refresh_and_reuse_are_recorded(harness: Harness, wallet: Any) -> None:
    reply, _ = await _sign_in(harness, wallet)
    token = reply.json()["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "portcullis-demo"}
    assert (await harness.client.post("/token", data=form)).status_code == 200
    assert (await harness.client.post("/token", data=form)).status_code == 400  # reuse
    log = await rows(harness.app.state.provider.store.engine)
    kinds = [r["type"] for r in log]
    assert kinds[-4:] == [
        "signin.succeeded",
        "token.refreshed",
        "token.family_revoked",
        "token.refresh_failed",
    ]
    revoked, failed = log[-2], log[-1]
    assert revoked["reason"] == "reuse_detected" and failed["reason"] == "reused"
    assert revoked["session_hash"] == failed["session_hash"] == log[-3]["session_hash"]


async def test_no_token_without_its_audit_row(harness: Harness, wallet: Any) -> None:
    """If the audit append fails, the sign-in fails and nothing of it is stored (fail closed)."""
    from sqlalchemy import text

    engine = harness.app.state.provider.store.engine
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE audit_head"))
    reply, _ = await _sign_in(harness, wallet)
    # refused at once, as a dependency that is down (ASVS 16.5.3): 503 with Retry-After, no tokens
    assert reply.status_code == 503 and reply.json()["error"] == "temporarily_unavailable"
    assert reply.headers["retry-after"] and "access_token" not in reply.text
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM refresh_tokens"))).scalar_one() == 0
        assert (
            await conn.execute(text("SELECT count(*) FROM siwe_nonces WHERE consumed_at IS NOT NULL"))
        ).scalar_one() == 0


async def test_concurrent_writers_leave_no_gap(database_url: str, tmp_path: Path) -> None:
    """Two app instances (as two server processes would) append to one log concurrently."""
    clock = FakeClock()
    settings = make_settings(tmp_path, database_url=database_url)
    async with running_app(settings, clock) as a, running_app(settings, clock) as b:
        wallets = [Account.create() for _ in range(8)]
        replies = await asyncio.gather(*(_sign_in(h, w) for h in (a, b) for w in wallets))
        assert all(r.status_code == 200 for r, _ in replies)
        log = await rows(a.app.state.provider.store.engine)
        assert [r["seq"] for r in log] == list(range(1, len(log) + 1))
        assert sum(r["type"] == "signin.succeeded" for r in log) == 16
        p = a.app.state.provider
        from app.audit.checkpoints import FileSink

        report = await verify_log(p.audit_log, p.checkpoint_store, FileSink(settings.audit_checkpoint_file))
        assert report.ok, report.finding


async def test_nonce_issuance_sampling(tmp_path: Path, sqlite_url: str) -> None:
    clock = FakeClock()
    async with running_app(
        make_settings(tmp_path, database_url=sqlite_url, audit_nonce_sample_rate=1.0), clock
    ) as h:
        await h.client.post("/siwe/nonce")
        log = await rows(h.app.state.provider.store.engine)
        assert log[-1]["type"] == "nonce.issued" and len(json.loads(log[-1]["data"])["nonce_hash"]) == 64
    async with running_app(
        make_settings(tmp_path / "b", database_url=f"sqlite+aiosqlite:///{tmp_path}/b.db"), clock
    ) as h:
        await h.client.post("/siwe/nonce")
        assert all(r["type"] != "nonce.issued" for r in await rows(h.app.state.provider.store.engine))
