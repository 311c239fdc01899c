"""PostgreSQL time bounds (app/storage/db.py ``Timeouts``): a pool with no free connection answers 503
with ``Retry-After`` after the checkout timeout, never a 500 and never a 30 s wait, and the server is
whole again as soon as connections are free."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from app.storage.hot import POOL_SIZE, PgDriver
from tests.conftest import FakeClock, make_settings, postgres_database, running_app, sign, siwe_text

POOL_CONNECTIONS = 30  # app/storage/db.py: pool_size 10 + max_overflow 20


async def test_exhausted_pool_answers_503_with_retry_after(tmp_path: Path, wallet: Any) -> None:
    async with postgres_database() as url:
        settings = make_settings(
            tmp_path, database_url=url, database_pool_timeout_seconds=0.5, retry_after_seconds=7
        )
        clock = FakeClock()
        async with running_app(settings, clock) as h:
            store = h.app.state.provider.store
            engine, hot = store.engine, store.hot
            assert isinstance(hot, PgDriver)
            async with contextlib.AsyncExitStack() as held:
                # Both pools: SQLAlchemy's (cold paths) and the hot path's own asyncpg pool.
                for _ in range(POOL_CONNECTIONS):
                    await held.enter_async_context(engine.connect())
                for _ in range(POOL_SIZE):
                    await held.enter_async_context(hot.connection())
                started = time.monotonic()
                nonce = await h.client.post("/siwe/nonce")
                elapsed = time.monotonic() - started
                assert nonce.status_code == 503, nonce.text
                assert nonce.json()["error"] == "temporarily_unavailable"
                assert nonce.headers["retry-after"] == "7"
                assert elapsed < 3, f"waited {elapsed:.1f} s for a pooled connection"
                ready = await h.client.get("/ready")
                assert ready.status_code == 503 and ready.headers["retry-after"] == "7"
            offer = (await h.client.post("/siwe/nonce")).json()
            message = siwe_text(offer, wallet.address, issued_at=clock.now())
            reply = await h.client.post(
                "/siwe/verify", json={"message": message, "signature": sign(wallet, message)}
            )
            assert reply.status_code == 200, reply.text
