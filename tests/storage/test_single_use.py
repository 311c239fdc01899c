"""Single-use artefacts under concurrency, on SQLite and PostgreSQL: exactly one winner, no half-writes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.storage.models import Nonce, RefreshToken
from tests.conftest import FakeClock, make_settings, running_app, sign, siwe_text

RACERS = 12


async def test_concurrent_double_use_of_one_nonce(database_url: str, tmp_path: Path, wallet: Any) -> None:
    clock = FakeClock()
    async with running_app(make_settings(tmp_path, database_url=database_url), clock) as h:
        offer = (await h.client.post("/siwe/nonce")).json()
        message = siwe_text(offer, wallet.address, issued_at=clock.now())
        body = {"message": message, "signature": sign(wallet, message)}
        replies = await asyncio.gather(*(h.client.post("/siwe/verify", json=body) for _ in range(RACERS)))
        statuses = sorted(r.status_code for r in replies)
        assert statuses == [200] + [401] * (RACERS - 1), [r.text for r in replies]
        assert {r.json()["error"] for r in replies if r.status_code == 401} == {"nonce_mismatch"}
        engine = h.app.state.provider.store.engine
        async with engine.connect() as conn:
            # one refresh token for the one success: the losers wrote nothing
            assert (await conn.execute(select(func.count()).select_from(RefreshToken))).scalar_one() == 1
            consumed = (await conn.execute(select(Nonce.consumed_at))).scalar_one()
            assert consumed == clock.now()


async def test_concurrent_refresh_has_one_winner(database_url: str, tmp_path: Path, wallet: Any) -> None:
    clock = FakeClock()
    async with running_app(make_settings(tmp_path, database_url=database_url), clock) as h:
        offer = (await h.client.post("/siwe/nonce")).json()
        message = siwe_text(offer, wallet.address, issued_at=clock.now())
        tokens = (
            await h.client.post("/siwe/verify", json={"message": message, "signature": sign(wallet, message)})
        ).json()
        form = {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": "portcullis-demo",
        }
        replies = await asyncio.gather(*(h.client.post("/token", data=form) for _ in range(RACERS)))
        winners = [r for r in replies if r.status_code == 200]
        assert len(winners) == 1, [r.text for r in replies]
        assert all(r.json()["error"] == "invalid_grant" for r in replies if r.status_code != 200)
        # The losers presented a rotated token: reuse, so the family (winner's successor included) is revoked.
        successor = winners[0].json()["refresh_token"]
        after = await h.client.post("/token", data={**form, "refresh_token": successor})
        assert after.status_code == 400 and "revoked" in after.json()["error_description"]


async def test_nonce_and_token_hashes_only(database_url: str, tmp_path: Path, wallet: Any) -> None:
    clock = FakeClock()
    async with running_app(make_settings(tmp_path, database_url=database_url), clock) as h:
        offer = (await h.client.post("/siwe/nonce")).json()
        message = siwe_text(offer, wallet.address, issued_at=clock.now())
        tokens = (
            await h.client.post("/siwe/verify", json={"message": message, "signature": sign(wallet, message)})
        ).json()
        engine = h.app.state.provider.store.engine
        async with engine.connect() as conn:
            nonce_rows = (await conn.execute(select(Nonce.__table__))).all()
            token_rows = (await conn.execute(select(RefreshToken.__table__))).all()
        dump = repr(nonce_rows) + repr(token_rows)
        assert offer["nonce"] not in dump and tokens["refresh_token"] not in dump
        assert len(nonce_rows) == 1 and len(token_rows) == 1


async def test_purge_removes_only_expired(database_url: str, tmp_path: Path, wallet: Any) -> None:
    clock = FakeClock()
    async with running_app(make_settings(tmp_path, database_url=database_url), clock) as h:
        await h.client.post("/siwe/nonce")
        store = h.app.state.provider.store
        assert await store.purge_expired(clock.now()) == 0
        clock.advance(h.settings.nonce_ttl_seconds + 1)
        fresh = (await h.client.post("/siwe/nonce")).json()
        assert await store.purge_expired(clock.now()) == 1
        message = siwe_text(fresh, wallet.address, issued_at=clock.now())
        ok = await h.client.post(
            "/siwe/verify", json={"message": message, "signature": sign(wallet, message)}
        )
        assert ok.status_code == 200


async def test_database_down_fails_closed(tmp_path: Path, sqlite_url: str, wallet: Any) -> None:
    from app.storage.db import create_engine
    from app.storage.sql import SqlStore

    clock = FakeClock()
    async with running_app(make_settings(tmp_path, database_url=sqlite_url), clock) as h:
        store = h.app.state.provider.store
        # A real engine pointed at a port where nothing listens: every query fails to connect, on the
        # SQLAlchemy paths and on the hot path's own driver (app.storage.hot) alike.
        dead = SqlStore(create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none"), store.hasher)
        parts = ("engine", "hot", "group", "sql")
        healthy = {name: getattr(store, name) for name in parts}
        for name in parts:
            setattr(store, name, getattr(dead, name))
        try:
            ready = await h.client.get("/ready")
            assert ready.status_code == 503 and ready.json()["error"] == "temporarily_unavailable"
            nonce = await h.client.post("/siwe/nonce")
            assert nonce.status_code == 503 and nonce.json()["error"] == "temporarily_unavailable"
            assert "access_token" not in nonce.text
        finally:
            await dead.close()
            await dead.engine.dispose()
            for name, part in healthy.items():
                setattr(store, name, part)
        assert (await h.client.get("/ready")).status_code == 200
