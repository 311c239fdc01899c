"""Rate limits and failure locks through the real endpoints: 429 with Retry-After under a burst, one budget
shared by two app instances through the machine's Redis, a spoofed X-Forwarded-For buys no fresh budget,
and an IP locked after a spike of failed sign-ins is let in again after the cool-down."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import pyotp
import pytest
from eth_account import Account
from sqlalchemy import text

from app.risk.limits import DEFAULT_LIMITS
from tests.conftest import FakeClock, make_settings, running_app, sign, siwe_text

REDIS = ("127.0.0.1", 6379)


def redis_up() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=0.5):
            return True
    except OSError:
        return False


async def test_burst_gets_429_with_retry_after(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url, rate_limits=True)
    async with running_app(settings, FakeClock()) as h:
        replies = [await h.client.post("/siwe/nonce") for _ in range(60)]
        codes = [r.status_code for r in replies]
        assert 201 in codes and 429 in codes
        limited = next(r for r in replies if r.status_code == 429)
        assert limited.json()["error"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        # a client writing its own X-Forwarded-For (no trusted proxy configured) is still the same IP
        spoofed = await h.client.post("/siwe/nonce", headers={"X-Forwarded-For": "203.0.113.9"})
        assert spoofed.status_code == 429
        h.clock.advance(int(limited.headers["retry-after"]))
        assert (await h.client.post("/siwe/nonce")).status_code == 201


async def test_two_instances_share_one_budget_in_redis(tmp_path: Path) -> None:
    if not redis_up():
        pytest.skip("Redis is not answering on 127.0.0.1:6379: shared limits need it")
    # a fresh logical key space per run: the budgets live under the prefix of this database number
    url = f"redis://127.0.0.1:6379/{uuid.uuid4().int % 15 + 1}"
    clock = FakeClock()
    common: dict[str, Any] = {"rate_limits": True, "redis_url": url}
    a_settings = make_settings(tmp_path / "a", database_url=f"sqlite+aiosqlite:///{tmp_path}/a.db", **common)
    b_settings = make_settings(tmp_path / "b", database_url=f"sqlite+aiosqlite:///{tmp_path}/b.db", **common)
    async with running_app(a_settings, clock) as a, running_app(b_settings, clock) as b:
        await a.app.state.provider.guard.backend.reset("")
        alone = [await a.client.post("/siwe/nonce") for _ in range(20)]
        together = [await b.client.post("/siwe/nonce") for _ in range(20)]
        assert sum(r.status_code == 201 for r in alone) == 20
        # b spends the same budget a already used: far fewer than 20 get through
        assert sum(r.status_code == 201 for r in together) < 20
        assert (await a.client.get("/ready")).status_code == 200
        await a.app.state.provider.guard.backend.reset("")


async def test_failure_spike_locks_the_ip_then_cools_down(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(
        tmp_path, database_url=sqlite_url, rate_limits=False, lock_ip_threshold=5, lock_cooldown_seconds=60
    )
    clock = FakeClock()
    async with running_app(settings, clock) as h:
        wallet = Account.create()
        for attempt in range(20):
            nonce = await h.client.post("/siwe/nonce")
            if nonce.status_code == 429:
                break
            message = siwe_text(nonce.json(), wallet.address, issued_at=clock.now())
            forged = {"message": message, "signature": sign(Account.create(), message)}
            assert (await h.client.post("/siwe/verify", json=forged)).status_code == 401
        assert 5 <= attempt < 20  # locked once the failure score passed the threshold
        blocked = await h.client.post("/siwe/nonce")
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) <= 60
        from tests.audit.tamper import rows

        assert any(r["type"] == "risk.locked" for r in await rows(h.app.state.provider.store.engine))
        clock.advance(61)
        offer = (await h.client.post("/siwe/nonce")).json()
        message = siwe_text(offer, wallet.address, issued_at=clock.now())
        ok = await h.client.post(
            "/siwe/verify", json={"message": message, "signature": sign(wallet, message)}
        )
        assert ok.status_code == 200, ok.text


async def test_ready_reports_redis_down(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(
        tmp_path, database_url=sqlite_url, rate_limits=True, redis_url="redis://127.0.0.1:1/0"
    )
    async with running_app(settings, FakeClock()) as h:
        assert (await h.client.post("/siwe/nonce")).status_code == 201  # the stricter fallback still serves
        ready = await h.client.get("/ready")
        assert ready.status_code == 503 and "Redis" in ready.json()["error_description"]


def shared_settings(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Any:
    """An app (on SQLite unless ``database_url``) whose limits live in the machine's Redis, in a database
    number of this run."""
    if not redis_up():
        pytest.skip("Redis is not answering on 127.0.0.1:6379: shared limits need it")
    url = f"redis://127.0.0.1:6379/{uuid.uuid4().int % 15 + 1}"
    db = database_url or f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    return make_settings(tmp_path, database_url=db, rate_limits=True, redis_url=url, **overrides)


async def count(h: Any, sql: str) -> int:
    async with h.app.state.provider.store.engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def test_with_redis_a_refused_nonce_request_stores_no_nonce(tmp_path: Path, database_url: str) -> None:
    # On PostgreSQL the nonce is written while Redis's verdict travels and committed only once it is in;
    # on SQLite the verdict is awaited before the write. Either way a refusal stores nothing.
    async with running_app(shared_settings(tmp_path, database_url), FakeClock()) as h:
        guard = h.app.state.provider.guard
        await guard.backend.reset("")
        try:
            replies = [await h.client.post("/siwe/nonce") for _ in range(40)]
            issued = sum(r.status_code == 201 for r in replies)
            assert issued == DEFAULT_LIMITS["nonce:ip"].burst
            assert {r.status_code for r in replies[issued:]} == {429}
            assert await count(h, "SELECT count(*) FROM siwe_nonces") == issued
        finally:
            await guard.backend.reset("")


async def test_with_redis_a_refused_sign_in_is_not_counted_or_recorded(tmp_path: Path) -> None:
    # Bad signatures over the verify budget: the signature check may run while Redis answers, but a
    # refused request is a 429, not a 401, and leaves no failure entry and no failure count behind.
    clock = FakeClock()
    async with running_app(shared_settings(tmp_path), clock) as h:
        guard = h.app.state.provider.guard
        await guard.backend.reset("")
        await guard.detector.unlock(ip="127.0.0.1")  # failures an earlier run left in this database
        try:
            wallet, codes = Account.create(), []
            for _ in range(14):
                offer = (await h.client.post("/siwe/nonce")).json()
                message = siwe_text(offer, wallet.address, issued_at=clock.now())
                forged = {"message": message, "signature": sign(Account.create(), message)}
                codes.append((await h.client.post("/siwe/verify", json=forged)).status_code)
            allowed = DEFAULT_LIMITS["verify:ip"].burst
            assert codes == [401] * allowed + [429] * (14 - allowed)
            entries = await count(h, "SELECT count(*) FROM audit_log WHERE type = 'signin.failed'")
            assert entries == allowed
            score = await guard.detector.store.peek("score:ip:127.0.0.1", clock.now().timestamp(), 300.0)
            assert allowed - 0.5 < score <= allowed  # one per 401, none for the 429s (no time passed)
        finally:
            await guard.backend.reset("")
            await guard.detector.unlock(ip="127.0.0.1")


async def test_with_redis_a_refused_step_up_does_not_spend_the_code(tmp_path: Path) -> None:
    # The first request Redis refuses carries a valid signature and TOTP code: the code is checked only
    # after the gate, so it is still good once the budget has refilled.
    clock = FakeClock()
    async with running_app(shared_settings(tmp_path), clock) as h:
        guard = h.app.state.provider.guard
        await guard.backend.reset("")
        await guard.detector.unlock(ip="127.0.0.1")
        try:
            wallet = Account.create()
            tokens = (await verify(h, wallet)).json()
            auth = {"Authorization": f"Bearer {tokens['access_token']}"}
            enrolment = (await h.client.post("/mfa/totp", headers=auth)).json()
            totp = pyotp.TOTP(enrolment["secret"])
            confirm = {"factor_id": enrolment["factor_id"], "code": totp.at(clock.now())}
            assert (await h.client.post("/mfa/totp/confirm", json=confirm, headers=auth)).status_code == 200
            clock.advance(30)  # a fresh TOTP step, and the verify budget full again
            for _ in range(DEFAULT_LIMITS["verify:ip"].burst):  # spend it exactly, nothing refused yet
                assert (await verify(h, Account.create(), forged=True)).status_code == 401
            factor = {"type": "totp", "code": totp.at(clock.now())}
            refused = await verify(h, wallet, second_factor=factor)
            assert refused.status_code == 429, refused.text
            clock.advance(int(refused.headers["retry-after"]))
            again = await verify(h, wallet, second_factor=factor)
            assert again.status_code == 200, again.text  # the refused request did not use the code up
        finally:
            await guard.backend.reset("")
            await guard.detector.unlock(ip="127.0.0.1")


async def verify(h: Any, wallet: Any, *, forged: bool = False, **extra: Any) -> Any:
    offer = (await h.client.post("/siwe/nonce")).json()
    message = siwe_text(offer, wallet.address, issued_at=h.clock.now())
    signer = Account.create() if forged else wallet
    return await h.client.post(
        "/siwe/verify", json={"message": message, "signature": sign(signer, message), **extra}
    )
