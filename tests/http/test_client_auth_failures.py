"""RFC 6749 section 10.10: failed client authentication spends a per-client_id failure budget and feeds the
(client, IP) and IP failure-spike locks, with audit entries, at every endpoint that authenticates clients;
in process and through Redis. The client IP comes from X-Forwarded-For written by a trusted proxy
(127.0.0.1, the test transport's peer). Rate limits stay off (the test default): these are security locks.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audit.tamper import rows
from tests.conftest import FakeClock, Harness, make_settings, running_app
from tests.flow.client import write_clients

SECRET = "the-broker-secret-0123456789-abcdefghij"
SCOPE = "service:positions:read"
CC = {"grant_type": "client_credentials", "scope": SCOPE}


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def fresh_ips(n: int) -> list[str]:
    """Addresses no other test uses at the same time (they are labels in a header, never contacted)."""
    rng = random.Random(uuid.uuid4().int)
    return [f"198.18.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(n)]


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Setup:
    h: Harness
    client_id: str

    async def token(self, ip: str, secret: str) -> httpx.Response:
        headers = {**basic(self.client_id, secret), "X-Forwarded-For": ip}
        return await self.h.client.post("/token", data=CC, headers=headers)

    async def audit(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in await rows(self.h.app.state.provider.store.engine) if r["type"] == kind]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis" and not redis_up():
        pytest.skip("Redis is not answering on 127.0.0.1:6379")
    return str(request.param)


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def setup(
    tmp_path: Path, sqlite_url: str, backend: str, overrides: dict[str, Any]
) -> AsyncIterator[Setup]:
    client_id = f"broker-{secrets.token_hex(4)}"  # a fresh id: its Redis keys are this test's alone
    broker = {
        "client_id": client_id,
        "redirect_uris": ["https://broker.example/cb"],
        "grant_types": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": SECRET,
        "scope": SCOPE,
    }
    redis = {"redis_url": f"redis://127.0.0.1:6379/{uuid.uuid4().int % 15 + 1}"} if backend == "redis" else {}
    settings = make_settings(
        tmp_path,
        database_url=sqlite_url,
        clients_file=write_clients(tmp_path / "clients.json", [broker]),
        trusted_proxies=["127.0.0.1/32"],
        **redis,
        **overrides,
    )
    async with running_app(settings, FakeClock()) as h:
        yield Setup(h, client_id)


def assert_rate_limited(reply: httpx.Response) -> int:
    assert reply.status_code == 429, reply.text
    assert reply.json()["error"] == "rate_limited"
    wait = int(reply.headers["retry-after"])
    assert wait >= 1
    return wait


@pytest.mark.parametrize("overrides", [{"client_auth_failure_budget": 50}])
async def test_250_wrong_secrets_from_10_ips_spend_the_budget(setup: Setup) -> None:
    legit, *attackers, newcomer = fresh_ips(12)
    assert (await setup.token(legit, SECRET)).status_code == 200  # a server the client runs on
    codes = []
    for i in range(250):
        reply = await setup.token(attackers[i % 10], f"guess-{i:04d}-{secrets.token_hex(8)}")
        codes.append(reply.status_code)
        if reply.status_code == 429:
            assert_rate_limited(reply)
    assert codes == [401] * 50 + [429] * 200
    # Spent: no source without a recent success gets its secret checked, not even the right one ...
    assert_rate_limited(await setup.token(attackers[0], SECRET))
    wait = assert_rate_limited(await setup.token(newcomer, SECRET))
    # ... but the server that authenticated before is not locked out by someone else's guesses
    assert (await setup.token(legit, SECRET)).status_code == 200

    failed = await setup.audit("client.auth_failed")
    # the 51st was checked, failed and found the budget spent (429); the later ones were not checked
    assert len(failed) == 51
    assert {r["client_id"] for r in failed} == {setup.client_id}
    assert {r["reason"] for r in failed} == {"invalid_credentials"}
    assert {r["ip"] for r in failed} == {f"{ip.rsplit('.', 1)[0]}.0/24" for ip in attackers}  # truncated
    spent = [r for r in await setup.audit("risk.locked") if r["reason"] == "client failure budget spent"]
    assert len(spent) == 1 and spent[0]["client_id"] == setup.client_id
    everything = json.dumps(await rows(setup.h.app.state.provider.store.engine), default=str)
    assert SECRET not in everything and "guess-" not in everything

    setup.h.clock.advance(wait)
    assert (await setup.token(newcomer, SECRET)).status_code == 200


async def test_a_guessing_ip_locks_itself_out_of_the_client_not_the_client_out(setup: Setup) -> None:
    # Defaults: the (client, IP) pair locks at 10 failures, the budget holds 100.
    *attackers, newcomer = fresh_ips(11)
    codes = [(await setup.token(attackers[i % 10], f"guess-{i}")).status_code for i in range(250)]
    assert codes == [401] * 100 + [429] * 150  # each IP's 11th attempt on is refused unchecked
    wait = assert_rate_limited(await setup.token(attackers[3], SECRET))  # even with the right secret
    assert wait <= setup.h.settings.lock_cooldown_seconds
    assert (await setup.token(newcomer, SECRET)).status_code == 200  # another IP is not locked out
    pairs = [r for r in await setup.audit("risk.locked") if r["reason"] == "client_ip failure spike"]
    assert len(pairs) == 10 and {r["client_id"] for r in pairs} == {setup.client_id}
    assert len(await setup.audit("client.auth_failed")) == 100
    setup.h.clock.advance(setup.h.settings.lock_cooldown_seconds + 1)
    assert (await setup.token(attackers[3], SECRET)).status_code == 200


@pytest.mark.parametrize("overrides", [{"lock_ip_threshold": 5}])
async def test_failures_for_many_client_ids_lock_the_ip(setup: Setup) -> None:
    ip, other = fresh_ips(2)
    for i in range(5):  # unknown ids are counted as registered ones are
        reply = await setup.h.client.post(
            "/token", data=CC, headers={**basic(f"nobody-{i}", SECRET), "X-Forwarded-For": ip}
        )
        assert reply.status_code == 401 and reply.json()["error"] == "invalid_client"
    assert_rate_limited(await setup.token(ip, SECRET))
    assert_rate_limited(await setup.h.client.post("/siwe/nonce", headers={"X-Forwarded-For": ip}))
    assert (await setup.token(other, SECRET)).status_code == 200
    locks = [r for r in await setup.audit("risk.locked") if r["reason"] == "ip failure spike"]
    assert len(locks) == 1
    unknown = await setup.audit("client.auth_failed")
    assert [r["reason"] for r in unknown] == ["unknown_client"] * 5
    assert [r["client_id"] for r in unknown] == [f"nobody-{i}" for i in range(5)]


@pytest.mark.parametrize("overrides", [{"client_auth_failure_budget": 4}])
async def test_every_endpoint_that_authenticates_clients_spends_the_one_budget(setup: Setup) -> None:
    ips = fresh_ips(5)
    wrong = basic(setup.client_id, "not-the-secret-0123456789")
    calls = [("/token", CC), ("/par", {"response_type": "code"}), ("/introspect", {"token": "x"})]
    calls.append(("/revoke", {"token": "x"}))
    for (path, form), ip in zip(calls, ips, strict=False):
        reply = await setup.h.client.post(path, data=form, headers={**wrong, "X-Forwarded-For": ip})
        assert reply.status_code == 401 and reply.json()["error"] == "invalid_client", (path, reply.text)
    fifth = await setup.h.client.post("/par", data=calls[1][1], headers={**wrong, "X-Forwarded-For": ips[4]})
    assert_rate_limited(fifth)
    failed = await setup.audit("client.auth_failed")
    assert [data(r)["endpoint"] for r in failed] == ["/token", "/par", "/introspect", "/revoke", "/par"]


def data(row: dict[str, Any]) -> dict[str, Any]:
    value = row["data"]
    parsed: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return parsed
