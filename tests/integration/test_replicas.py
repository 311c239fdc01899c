"""Three ``portcullis serve`` replicas on one PostgreSQL database and one Redis (issue 15, "Proofs").

Single-use things are single-use across replicas: 50 parallel redemptions of one item, split over the
replicas, have exactly one winner, every round, for a SIWE nonce, an authorization code, a refresh token,
a DPoP proof ``jti`` and a client-assertion ``jti`` (each is one conditional UPDATE/INSERT in PostgreSQL).
A rate limit is one budget across replicas (Redis). A key rotation, a registered client and an updated
client made through one replica are seen by every replica within a second (app.storage.changes), far
inside the periodic re-read the replicas are given here (KEY_RELOAD).

PORTCULLIS_TEST_REPLICA_ROUNDS lowers the rounds for a local run; CI runs the default 100.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from tests.conftest import sign, siwe_text
from tests.flow.client import (
    Flow,
    Key,
    authorize,
    client_assertion,
    dpop_proof,
    secret_client,
    service_client,
    write_clients,
)
from tests.integration.replicas import (
    REDIS_URL,
    postgres_database_sync,
    redis_available,
    replica_env,
    replicas,
)
from tests.integration.server import ServerProcess

ROUNDS = int(os.environ.get("PORTCULLIS_TEST_REPLICA_ROUNDS", "100"))
PARALLEL = 50
PORTS = [18310, 18311, 18312]
ISSUER = "http://127.0.0.1:18319"  # the public name all three answer for (as behind a load balancer)
KEY_RELOAD = 20  # seconds: the periodic re-read, far above the propagation the listener gives
PROPAGATION = 1.0  # seconds: what the replicas are held to
REDIRECT = "http://127.0.0.1:18319/cb"
WEB_SECRET = "web-client-secret-for-the-replica-tests-0123456789"
IAT = "initial-access-token-for-the-replica-tests-0123456789"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
HIGH = "1000000"  # locks and failure budgets out of the way: 49 losers a round are failures by design


@dataclass
class Cluster:
    servers: list[ServerProcess]
    svc: Key

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not redis_available():
        pytest.skip("no Redis at 127.0.0.1:6379: the replica tests share rate limits through it")
    tmp = tmp_path_factory.mktemp("replicas")
    svc = Key()
    clients = write_clients(
        tmp / "clients.json",
        [
            service_client("svc", svc, "service:positions:read"),
            secret_client("web", WEB_SECRET, [REDIRECT], method="client_secret_post"),
        ],
    )
    with postgres_database_sync() as url:
        env = replica_env(
            url,
            ISSUER,
            PORTCULLIS_CLIENTS_FILE=str(clients),
            PORTCULLIS_REDIS_URL=REDIS_URL,
            PORTCULLIS_RATE_LIMITS="false",  # one test machine is thousands of clients here
            PORTCULLIS_REFRESH_RETRY_WINDOW="0",  # strictly single-use refresh tokens
            PORTCULLIS_KEY_RELOAD_SECONDS=str(KEY_RELOAD),
            PORTCULLIS_JWKS_MAX_AGE_SECONDS="1",
            PORTCULLIS_LOCK_THRESHOLD=HIGH,
            PORTCULLIS_LOCK_IP_THRESHOLD=HIGH,
            PORTCULLIS_CLIENT_AUTH_FAILURE_BUDGET=HIGH,
            PORTCULLIS_CLIENT_AUTH_LOCK_THRESHOLD=HIGH,
            PORTCULLIS_REGISTRATION_ENABLED="true",
            PORTCULLIS_REGISTRATION_INITIAL_ACCESS_TOKEN=IAT,
        )
        with replicas(tmp, PORTS, env) as servers:
            yield Cluster(servers, svc)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def clients_for(urls: list[str]) -> list[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=PARALLEL)
    return [httpx.AsyncClient(base_url=u, timeout=30, limits=limits) for u in urls]


async def race(
    clients: list[httpx.AsyncClient], attempt: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
) -> list[int]:
    """``PARALLEL`` attempts at once, attempt i at replica i mod n; their status codes."""
    replies = await asyncio.gather(*(attempt(clients[i % len(clients)], i) for i in range(PARALLEL)))
    return [r.status_code for r in replies]


def posting(path: str, form: dict[str, str]) -> Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]:
    """An attempt that posts the same ``form`` to ``path`` at whichever replica it is given."""

    async def attempt(x: httpx.AsyncClient, _i: int) -> httpx.Response:
        return await x.post(path, data=form)

    return attempt


def svc_form(key: Key) -> dict[str, str]:
    """client_credentials for the service client, with a fresh client assertion (a new jti)."""
    return {
        "grant_type": "client_credentials",
        "client_id": "svc",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(key, "svc", ISSUER),
    }


def one_winner(statuses: list[int], what: str, round_: int) -> None:
    assert statuses.count(200) == 1, f"{what}, round {round_}: {sorted(statuses)}"
    assert all(400 <= s < 500 for s in statuses if s != 200), f"{what}, round {round_}: {sorted(statuses)}"


async def sign_in(http: httpx.AsyncClient, at: httpx.AsyncClient | None = None) -> httpx.Response:
    wallet = Account.create()
    offer = (await http.post("/siwe/nonce")).json()
    message = siwe_text(offer, wallet.address, issued_at=datetime.now(UTC))
    return await (at or http).post(
        "/siwe/verify", json={"message": message, "signature": sign(wallet, message)}
    )


async def signed_offers(http: list[httpx.AsyncClient], n: int) -> list[dict[str, str]]:
    """``n`` signed SIWE messages, each on a nonce issued by a different replica in turn."""

    async def one(i: int) -> dict[str, str]:
        wallet = Account.create()
        offer = (await http[i % len(http)].post("/siwe/nonce")).json()
        message = siwe_text(offer, wallet.address, issued_at=datetime.now(UTC))
        return {"message": message, "signature": sign(wallet, message)}

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def test_a_nonce_issued_by_one_replica_is_used_once_at_another(cluster: Cluster) -> None:
    async def go() -> list[int]:
        a, b, c = clients_for(cluster.urls)
        try:
            (body,) = await signed_offers([a], 1)
            return [(await x.post("/siwe/verify", json=body)).status_code for x in (b, c, a)]
        finally:
            for x in (a, b, c):
                await x.aclose()

    first, *again = run(go())
    assert first == 200 and again == [401, 401]  # the nonce is spent for every replica


def test_fifty_parallel_redemptions_have_exactly_one_winner_every_round(cluster: Cluster) -> None:
    async def go() -> dict[str, int]:
        http = clients_for(cluster.urls)
        started = mark = time.monotonic()
        phases: dict[str, float] = {}

        def lap() -> float:
            nonlocal mark
            mark, before = time.monotonic(), mark
            return round(mark - before, 1)

        try:
            # -- SIWE nonces: the winners' refresh tokens are the next item
            offers = await signed_offers(http, ROUNDS)
            refresh_tokens: list[str] = []
            for n, body in enumerate(offers):

                async def verify(
                    x: httpx.AsyncClient, _i: int, body: dict[str, str] = body
                ) -> httpx.Response:
                    return await x.post("/siwe/verify", json=body)

                replies = await asyncio.gather(*(verify(http[i % 3], i) for i in range(PARALLEL)))
                one_winner([r.status_code for r in replies], "SIWE nonce", n)
                (won,) = [r for r in replies if r.status_code == 200]
                refresh_tokens.append(won.json()["refresh_token"])
            phases["SIWE nonce"] = lap()
            # -- refresh tokens
            for n, token in enumerate(refresh_tokens):
                form = {"grant_type": "refresh_token", "refresh_token": token}
                one_winner(await race(http, posting("/token", form)), "refresh token", n)
            phases["refresh token"] = lap()

            # -- authorization codes, each from a full authorization at a replica in turn
            async def code(i: int) -> tuple[str, str]:
                async with httpx.AsyncClient(base_url=cluster.urls[i % 3], timeout=30) as browser:
                    flow = Flow(browser, ISSUER, "web", REDIRECT)
                    got = await authorize(flow, Account.create(), pushed=False)
                    return got.code, got.verifier

            # (an authorization code lives 60 s: each batch is made just before its rounds)
            for start in range(0, ROUNDS, 10):
                batch = range(start, min(start + 10, ROUNDS))
                codes = await asyncio.gather(*(code(i) for i in batch))
                for n, (value, verifier) in zip(batch, codes, strict=True):
                    form = {
                        "grant_type": "authorization_code",
                        "code": value,
                        "code_verifier": verifier,
                        "redirect_uri": REDIRECT,
                        "client_id": "web",
                        "client_secret": WEB_SECRET,
                    }
                    one_winner(await race(http, posting("/token", form)), "authorization code", n)
            phases["authorization code"] = lap()
            # -- client-assertion jti: one assertion, presented 50 times
            for n in range(ROUNDS):
                form = svc_form(cluster.svc)
                one_winner(await race(http, posting("/token", form)), "client-assertion jti", n)
            phases["client-assertion jti"] = lap()
            # -- DPoP proof jti: one proof, 50 requests that differ in nothing else that is single-use
            holder = Key()
            for n in range(ROUNDS):
                proof = dpop_proof(holder, "POST", f"{ISSUER}/token")
                forms = [svc_form(cluster.svc) for _ in range(PARALLEL)]

                async def dpop(
                    x: httpx.AsyncClient, i: int, proof: str = proof, forms: list[dict[str, str]] = forms
                ) -> httpx.Response:
                    return await x.post("/token", data=forms[i], headers={"DPoP": proof})

                one_winner(await race(http, dpop), "DPoP proof jti", n)
            phases["DPoP proof jti"] = lap()
            print(f"{ROUNDS} rounds in {time.monotonic() - started:.1f} s: {phases}")
            return {"rounds": ROUNDS}
        finally:
            for x in http:
                await x.aclose()

    done = run(go())
    assert done["rounds"] == ROUNDS


def test_a_key_rotated_through_one_replica_is_served_and_verified_by_all(cluster: Cluster) -> None:
    async def kids(x: httpx.AsyncClient) -> set[str]:
        return {k["kid"] for k in (await x.get("/jwks")).json()["keys"]}

    async def go() -> None:
        http = clients_for(cluster.urls)
        try:
            before = await kids(http[0])
            rotated = cluster.servers[0].portcullis("keys", "rotate", timeout=120)
            assert rotated.returncode == 0, rotated.stderr
            returned = time.monotonic()
            (new,) = [r for r in map(json.loads, rotated.stdout.splitlines()) if r["kid"] not in before]
            seen: dict[int, float] = {}
            while len(seen) < 3 and time.monotonic() - returned < KEY_RELOAD:
                for i, x in enumerate(http):
                    if i not in seen and new["kid"] in await kids(x):
                        seen[i] = time.monotonic() - returned
                await asyncio.sleep(0.05)
            assert len(seen) == 3 and max(seen.values()) <= PROPAGATION, seen
            # once it signs: a token each replica issues carries it and is live at every other replica
            starts = datetime.fromisoformat(new["activates_at"])
            await asyncio.sleep(max(0.0, (starts - datetime.now(UTC)).total_seconds()) + 0.5)
            for i, x in enumerate(http):
                reply = await sign_in(x)
                assert reply.status_code == 200, reply.text
                token = reply.json()["access_token"]
                import jwt

                assert jwt.get_unverified_header(token)["kid"] == new["kid"]
                for other in http[:i] + http[i + 1 :]:
                    answer = await other.post(
                        "/introspect",
                        data={"token": token, "client_id": "web", "client_secret": WEB_SECRET},
                    )
                    assert answer.status_code == 200 and answer.json()["active"] is True, answer.text
        finally:
            for x in http:
                await x.aclose()

    run(go())


def test_a_client_registered_or_updated_at_one_replica_is_known_to_all_within_a_second(
    cluster: Cluster,
) -> None:
    async def go() -> None:
        a, b, c = http = clients_for(cluster.urls)
        try:
            reply = await a.post(
                "/register",
                json={
                    "grant_types": ["client_credentials"],
                    "response_types": [],
                    "token_endpoint_auth_method": "client_secret_post",
                    "client_name": "before",
                },
                headers={"Authorization": f"Bearer {IAT}"},
            )
            assert reply.status_code == 201, reply.text
            info = reply.json()
            registered = time.monotonic()
            creds = {"client_id": info["client_id"], "client_secret": info["client_secret"]}
            for x in (b, c):
                while True:
                    answer = await x.post("/introspect", data={"token": "nothing", **creds})
                    if answer.status_code == 200 or time.monotonic() - registered > KEY_RELOAD:
                        break
                    await asyncio.sleep(0.05)
                assert answer.status_code == 200, answer.text  # the client authenticated there
            assert time.monotonic() - registered <= PROPAGATION
            # RFC 7592: an update at B; C answers with the new metadata, and its old secret no longer works
            path = "/register/" + info["client_id"]
            bearer = {"Authorization": f"Bearer {info['registration_access_token']}"}
            body = {
                k: v
                for k, v in info.items()
                if k
                not in (
                    "registration_access_token",
                    "registration_client_uri",
                    "client_secret_expires_at",
                    "client_id_issued_at",
                )
            }
            body["client_name"] = "after"
            updated = await b.put(path, json=body, headers=bearer)
            assert updated.status_code == 200, updated.text
            changed = time.monotonic()
            while time.monotonic() - changed <= PROPAGATION:
                read = await c.get(path, headers=bearer)
                if read.json().get("client_name") == "after":
                    break
                await asyncio.sleep(0.05)
            assert read.json()["client_name"] == "after", read.text
        finally:
            for x in http:
                await x.aclose()

    run(go())


def test_a_rate_limit_is_one_budget_across_replicas(tmp_path: Path, cluster: Cluster) -> None:
    """Two more replicas with the limits on: one IP's nonce burst (30, docs/RATE_LIMITS.md) is spent once,
    not once per replica."""
    env = {**cluster.servers[0].env}
    env = {
        k: v
        for k, v in env.items()
        if k.startswith("PORTCULLIS_") and k not in ("PORTCULLIS_PORT", "PORTCULLIS_DATA_DIR")
    }
    env.update(PORTCULLIS_RATE_LIMITS="true", PORTCULLIS_TRUSTED_PROXIES='["127.0.0.1/32"]')
    ip = f"198.51.100.{secrets.randbelow(200) + 1}"  # a fresh budget in the shared Redis

    async def go(urls: list[str]) -> list[int]:
        http = clients_for(urls)
        try:
            statuses = []
            for i in range(80):
                reply = await http[i % 2].post("/siwe/nonce", headers={"X-Forwarded-For": ip})
                statuses.append(reply.status_code)
            return statuses
        finally:
            for x in http:
                await x.aclose()

    with replicas(tmp_path, [18313, 18314], env) as pair:
        statuses = run(go([s.url for s in pair]))
    assert set(statuses) == {201, 429}, statuses
    # 30 at once, plus 2/s while the loop runs; two budgets of their own would give about 60
    assert 30 <= statuses.count(201) <= 40, statuses.count(201)
