"""GET /ready (app/http/readiness.py) on real dependencies: PostgreSQL, a redis-server and an anvil of
the test's own, each then killed; the draining flag; /health stays process-only throughout. The database
down is tests/integration/test_database_faults.py's (refused, reset and black-holed)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.anvil import Anvil, deploy
from tests.conftest import FakeClock, Harness, make_settings, postgres_database, running_app
from tests.redis_server import RedisServer

REDIS_PORT, ANVIL_PORT, SPARE_REDIS_PORT = 18205, 18210, 18207
BOUND = 2.5  # /ready's own bound is 2 s; the rest is this shared machine


async def timed_ready(h: Harness) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    reply = await h.client.get("/ready")
    return reply, time.monotonic() - started


def states(reply: httpx.Response) -> dict[str, str]:
    return {name: check["state"] for name, check in reply.json()["checks"].items()}


async def test_ready_reflects_postgresql_redis_and_the_chain_each_in_turn(tmp_path: Path) -> None:
    with Anvil(port=ANVIL_PORT) as chain, RedisServer(REDIS_PORT) as redis:
        registry = deploy(chain.w3, "ComplianceRegistry", chain.accounts[0], sender=chain.accounts[0])
        async with postgres_database() as database_url:
            settings = make_settings(
                tmp_path,
                database_url=database_url,
                rate_limits=True,
                redis_url=f"redis://127.0.0.1:{REDIS_PORT}/5",
                chains=[{"chain_id": 31337, "rpc_urls": [chain.url], "registry": registry.address}],
            )
            async with running_app(settings, FakeClock()) as h:
                reply, elapsed = await timed_ready(h)
                assert reply.status_code == 200, reply.text
                body = reply.json()
                assert body["status"] == "ready" and elapsed < BOUND
                assert states(reply) == {
                    "database": "up",
                    "redis": "up",
                    "chain:31337": "up",
                    "audit_sink": "up",
                }
                assert body["checks"]["chain:31337"]["block"] == chain.w3.eth.block_number
                assert all(isinstance(check["ms"], float) for check in body["checks"].values())

                redis.kill()
                reply, elapsed = await timed_ready(h)
                assert reply.status_code == 503 and elapsed < BOUND, reply.text
                assert int(reply.headers["retry-after"]) >= 1
                body = reply.json()
                assert body["status"] == "not_ready" and body["failing"] == ["redis"]
                assert body["error"] == "temporarily_unavailable" and "Redis" in body["error_description"]
                assert states(reply)["database"] == "up" and states(reply)["chain:31337"] == "up"
                assert (await h.client.get("/health")).json() == {"status": "ok"}

                chain._stop()  # anvil is gone too
                reply, elapsed = await timed_ready(h)
                assert reply.status_code == 503 and elapsed < BOUND, reply.text
                assert reply.json()["failing"] == ["redis", "chain:31337"]
                assert "chain 31337" in reply.json()["error_description"]
                assert (await h.client.get("/health")).status_code == 200


async def test_draining_is_503_before_anything_is_probed(tmp_path: Path, sqlite_url: str) -> None:
    async with running_app(make_settings(tmp_path, database_url=sqlite_url), FakeClock()) as h:
        ready = await h.client.get("/ready")
        assert ready.status_code == 200 and set(ready.json()["checks"]) == {"database", "audit_sink"}
        h.app.state.draining = True  # what graceful shutdown sets on SIGTERM
        reply = await h.client.get("/ready")
        assert reply.status_code == 503 and reply.json() == {"status": "draining"}
        assert int(reply.headers["retry-after"]) >= 1
        assert (await h.client.get("/health")).json() == {"status": "ok"}


async def test_with_redis_outage_refuse_a_rate_limited_endpoint_is_503_within_2_s(
    tmp_path: Path, sqlite_url: str
) -> None:
    with RedisServer(SPARE_REDIS_PORT) as redis:
        settings = make_settings(
            tmp_path,
            database_url=sqlite_url,
            rate_limits=True,
            redis_url=f"redis://127.0.0.1:{SPARE_REDIS_PORT}/5",
            redis_outage="refuse",
        )
        async with running_app(settings, FakeClock()) as h:
            assert (await h.client.post("/siwe/nonce")).status_code == 201
            redis.kill()
            for _ in range(3):  # the first finds the connection dead, the next the open breaker
                started = time.monotonic()
                reply = await h.client.post("/siwe/nonce")
                assert time.monotonic() - started < 2.0
                assert reply.status_code == 503, reply.text
                assert reply.json()["error"] == "temporarily_unavailable"
                assert int(reply.headers["retry-after"]) >= 1 and "nonce" not in reply.json()
