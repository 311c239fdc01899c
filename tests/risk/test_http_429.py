"""The limiter behind an ASGI endpoint, rendered by the project's error handlers (app.http.errors): a
burst gets 429 with Retry-After, forged X-Forwarded-For buys nothing, two app instances on one Redis share
one budget. The endpoint here is a stand-in; the real routes are wired to the limiter elsewhere."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.http.client_ip import client_ip
from app.http.errors import HANDLERS
from app.risk.limits import DEFAULT_LIMITS, LimiterBackend, RateLimiter
from app.risk.memory import MemoryBackend
from app.risk.redis_backend import RedisBackend
from tests.conftest import FakeClock

TRUSTED = [ipaddress.ip_network("10.0.0.0/8")]


def limited_app(backend: LimiterBackend, clock: FakeClock) -> Starlette:
    limiter = RateLimiter(backend, DEFAULT_LIMITS, clock)

    async def nonce(request: Request) -> Response:
        peer = request.client.host if request.client else None
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        ip = client_ip(peer, headers, TRUSTED)
        await limiter.check("nonce", ip=ip, client_id="dapp")
        return JSONResponse({"ip": ip}, status_code=201)

    return Starlette(routes=[Route("/siwe/nonce", nonce, methods=["POST"])], exception_handlers=HANDLERS)  # type: ignore[arg-type]


def client_for(app: Starlette, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://portcullis.test")


@pytest.fixture
async def memory_app(clock: FakeClock) -> AsyncIterator[Starlette]:
    yield limited_app(MemoryBackend(), clock)


async def test_a_burst_gets_429_with_retry_after(memory_app: Starlette) -> None:
    async with client_for(memory_app, "198.51.100.1") as client:
        replies = await asyncio.gather(*(client.post("/siwe/nonce") for _ in range(300)))
    statuses = [r.status_code for r in replies]
    assert statuses.count(201) == DEFAULT_LIMITS["nonce:ip"].burst
    assert statuses.count(429) == 300 - DEFAULT_LIMITS["nonce:ip"].burst
    refused = next(r for r in replies if r.status_code == 429)
    assert refused.json()["error"] == "rate_limited" and refused.json()["error_description"]
    assert refused.headers["retry-after"].isdigit() and int(refused.headers["retry-after"]) >= 1
    assert refused.headers["cache-control"] == "no-store"


async def test_forged_x_forwarded_for_from_an_untrusted_peer_buys_nothing(memory_app: Starlette) -> None:
    async with client_for(memory_app, "198.51.100.2") as client:
        replies = [
            await client.post("/siwe/nonce", headers={"X-Forwarded-For": f"203.0.113.{i}"})
            for i in range(100)
        ]
    assert sum(r.status_code == 201 for r in replies) == DEFAULT_LIMITS["nonce:ip"].burst
    assert {r.json()["ip"] for r in replies if r.status_code == 201} == {"198.51.100.2"}


async def test_forged_entries_behind_our_proxy_buy_nothing(memory_app: Starlette) -> None:
    async with client_for(memory_app, "10.0.0.2") as client:  # our proxy appended the real client
        replies = [
            await client.post("/siwe/nonce", headers={"X-Forwarded-For": f"203.0.113.{i}, 198.51.100.3"})
            for i in range(100)
        ]
        assert sum(r.status_code == 201 for r in replies) == DEFAULT_LIMITS["nonce:ip"].burst
        # a different real client behind the same proxy has its own budget
        other = await client.post("/siwe/nonce", headers={"X-Forwarded-For": "198.51.100.4"})
    assert other.status_code == 201 and other.json()["ip"] == "198.51.100.4"


async def test_two_app_instances_share_one_budget_in_redis(
    redis_url: str, prefix: str, clock: FakeClock
) -> None:
    backends = [RedisBackend(redis_url, MemoryBackend(), prefix=prefix) for _ in range(2)]
    apps = [limited_app(backend, clock) for backend in backends]
    try:
        async with client_for(apps[0], "198.51.100.5") as a, client_for(apps[1], "198.51.100.5") as b:
            replies = await asyncio.gather(*(c.post("/siwe/nonce") for _ in range(60) for c in (a, b)))
        statuses = [r.status_code for r in replies]
        assert statuses.count(201) == DEFAULT_LIMITS["nonce:ip"].burst  # one budget, not one per instance
        assert statuses.count(429) == 120 - DEFAULT_LIMITS["nonce:ip"].burst
    finally:
        for backend in backends:
            await backend.close()
