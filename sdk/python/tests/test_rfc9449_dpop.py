"""RFC 9449 sections 4.3 and 7 at a resource server: a DPoP-bound token from a real refresh with a real
proof is accepted with a fresh proof; each broken proof gets 401, a DPoP challenge and invalid_dpop_proof;
the bound token as Bearer is invalid_token; server nonces answer use_dpop_nonce with a DPoP-Nonce."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from conftest import PROFESSIONAL, RS, Resource, dpop_bound, proof_for, resource_app, sign_in, validator_for
from portcullis_resource import Nonces, RedisReplayStore
from portcullis_resource.dpop import normalize_htu
from portcullis_resource.errors import InvalidDpopProof
from portcullis_resource.replay import replay_key

from tests.conftest import Harness
from tests.flow.client import Key, b64url, dpop_proof


def dpop_headers(token: str, proof: str) -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": proof}


def assert_dpop_refusal(reply: Any, error: str) -> None:
    assert reply.status_code == 401, reply.text
    assert reply.json()["error"] == error
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith("DPoP ") and f'error="{error}"' in challenge and 'algs="' in challenge


@pytest.fixture
async def bound(server: Harness) -> tuple[str, Key]:
    key = Key()
    tokens = await dpop_bound(server, await sign_in(server, PROFESSIONAL), key)
    return tokens["access_token"], key


async def test_a_bound_token_with_its_proof_is_accepted(server: Harness, rs: Resource, bound: Any) -> None:
    token, key = bound
    reply = await rs.http.get(
        "/me", headers=dpop_headers(token, proof_for(server, key, "GET", f"{RS}/me", token))
    )
    assert reply.status_code == 200, reply.text


async def test_htu_is_compared_after_normalisation(server: Harness, rs: Resource, bound: Any) -> None:
    token, key = bound
    written = "HTTPS://RS.example:443/%6De?query=ignored#frag"
    assert normalize_htu(written) == f"{RS}/me"
    reply = await rs.http.get(
        "/me", headers=dpop_headers(token, proof_for(server, key, "GET", written, token))
    )
    assert reply.status_code == 200, reply.text


async def test_a_bound_token_sent_as_bearer_is_refused(rs: Resource, bound: Any) -> None:
    token, _ = bound
    reply = await rs.http.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401 and reply.json()["error"] == "invalid_token"
    assert reply.headers["www-authenticate"].startswith("DPoP ")
    assert "DPoP-bound" in reply.json()["error_description"]


async def test_a_bearer_token_sent_as_dpop_is_refused(server: Harness, rs: Resource) -> None:
    token = (await sign_in(server, PROFESSIONAL))["access_token"]
    proof = proof_for(server, Key(), "GET", f"{RS}/me", token)
    reply = await rs.http.get("/me", headers=dpop_headers(token, proof))
    assert reply.status_code == 401 and reply.json()["error"] == "invalid_token"


def broken_proofs(server: Harness, key: Key, token: str) -> dict[str, Any]:
    url = f"{RS}/me"
    now = int(server.clock.now().timestamp())
    other = Key()
    return {
        "missing": None,
        "wrong htm": proof_for(server, key, "POST", url, token),
        "wrong htu": proof_for(server, key, "GET", f"{RS}/other", token),
        "old iat": proof_for(server, key, "GET", url, token, iat=now - 120),
        "future iat": proof_for(server, key, "GET", url, token, iat=now + 60),
        "no ath": dpop_proof(key, "GET", url, iat=now),
        "wrong ath": proof_for(server, key, "GET", url, token + "x"),
        "other key (jkt)": proof_for(server, other, "GET", url, token),
        "typ JWT": _resign(key, url, token, now, typ="JWT"),
        "private jwk": _resign(key, url, token, now, jwk_extra={"d": "AAAA"}),
        "HS256": _hs256(key, url, token, now),
        "not a JWS": "abc.def",
        "crit": _resign(key, url, token, now, crit=["exp"]),
    }


def _resign(
    key: Key, url: str, token: str, now: int, *, typ: str = "dpop+jwt", jwk_extra: Any = None, **head: Any
) -> str:
    claims = {"jti": secrets.token_urlsafe(8), "htm": "GET", "htu": url, "iat": now}
    claims["ath"] = b64url(hashlib.sha256(token.encode()).digest())
    headers = {"typ": typ, "jwk": {**key.jwk, **(jwk_extra or {})}, **head}
    return jwt.encode(claims, key.private, algorithm="ES256", headers=headers)


def _hs256(key: Key, url: str, token: str, now: int) -> str:
    b64 = b64url
    head = b64(json.dumps({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk}).encode())
    body = b64(json.dumps({"jti": "x", "htm": "GET", "htu": url, "iat": now}).encode())
    mac = hmac.new(b"k" * 32, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


CASES = [
    "missing",
    "wrong htm",
    "wrong htu",
    "old iat",
    "future iat",
    "no ath",
    "wrong ath",
    "other key (jkt)",
    "typ JWT",
    "private jwk",
    "HS256",
    "not a JWS",
    "crit",
]


@pytest.mark.parametrize("case", CASES)
async def test_each_proof_check(server: Harness, rs: Resource, bound: Any, case: str) -> None:
    token, key = bound
    proof = broken_proofs(server, key, token)[case]
    headers = {"Authorization": f"DPoP {token}", **({"DPoP": proof} if proof else {})}
    assert_dpop_refusal(await rs.http.get("/me", headers=headers), "invalid_dpop_proof")


async def test_two_dpop_headers_are_refused(server: Harness, rs: Resource, bound: Any) -> None:
    token, key = bound
    proof = proof_for(server, key, "GET", f"{RS}/me", token)
    headers = [("Authorization", f"DPoP {token}"), ("DPoP", proof), ("DPoP", proof)]
    assert_dpop_refusal(await rs.http.get("/me", headers=headers), "invalid_dpop_proof")


async def test_a_proof_is_single_use(server: Harness, rs: Resource, bound: Any) -> None:
    token, key = bound
    proof = proof_for(server, key, "GET", f"{RS}/me", token)
    assert (await rs.http.get("/me", headers=dpop_headers(token, proof))).status_code == 200
    replay = await rs.http.get("/me", headers=dpop_headers(token, proof))
    assert_dpop_refusal(replay, "invalid_dpop_proof")
    assert "used before" in replay.json()["error_description"]


async def test_a_refused_proof_does_not_use_up_its_jti(server: Harness, rs: Resource, bound: Any) -> None:
    token, key = bound
    proof = proof_for(server, key, "GET", f"{RS}/me", token)
    # the same proof on the wrong method is refused without recording its jti ...
    assert (await rs.http.post("/me", headers=dpop_headers(token, proof))).status_code == 401
    # ... so its legitimate use still passes
    assert (await rs.http.get("/me", headers=dpop_headers(token, proof))).status_code == 200


async def test_server_nonces(server: Harness, bound: Any) -> None:
    token, key = bound
    validator = validator_for(server, dpop_nonces=Nonces(b"n" * 32))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=resource_app(validator)), base_url=RS
    ) as http:
        first = await http.get(
            "/me", headers=dpop_headers(token, proof_for(server, key, "GET", f"{RS}/me", token))
        )
        assert_dpop_refusal(first, "use_dpop_nonce")
        nonce = first.headers["dpop-nonce"]
        forged = proof_for(server, key, "GET", f"{RS}/me", token, nonce="A" * len(nonce))
        assert_dpop_refusal(await http.get("/me", headers=dpop_headers(token, forged)), "use_dpop_nonce")
        good = proof_for(server, key, "GET", f"{RS}/me", token, nonce=nonce)
        assert (await http.get("/me", headers=dpop_headers(token, good))).status_code == 200


REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
async def redis_clients() -> AsyncIterator[list[Any]]:
    """Two redis-py asyncio clients of the local Redis (two backend replicas); skipped, saying why, only
    when that Redis does not answer. redis-py itself is installed by the Makefile (the [redis] extra)."""
    import redis.asyncio

    clients = [redis.asyncio.Redis.from_url(REDIS_URL) for _ in range(2)]
    try:
        await clients[0].ping()
    except (redis.RedisError, OSError) as exc:
        for c in clients:
            await c.aclose()
        pytest.skip(f"Redis at 127.0.0.1:6379 is not answering: {exc}")
    yield clients
    for c in clients:
        await c.aclose()


async def test_redis_replay_store_shared_by_two_replicas(
    server: Harness, bound: Any, redis_clients: list[Any]
) -> None:
    """A proof accepted by one replica is refused by a second Validator with its own store and connection:
    the jti lives in Redis (SET NX PX), under the proof window as its TTL."""
    token, key = bound
    prefix = f"portcullis-resource-test:{secrets.token_hex(8)}:"  # concurrent runs share db 15
    replicas = [validator_for(server, replay_store=RedisReplayStore(c, prefix=prefix)) for c in redis_clients]
    url = f"{RS}/me"
    proof = proof_for(server, key, "GET", url, token)
    try:
        seen = await replicas[0].authenticate(
            method="GET", url=url, authorization=f"DPoP {token}", dpop_proofs=[proof]
        )
        assert seen.jkt is not None
        with pytest.raises(InvalidDpopProof, match="used before"):
            await replicas[1].authenticate(
                method="GET", url=url, authorization=f"DPoP {token}", dpop_proofs=[proof]
            )
        # A fresh proof (new jti) still passes on the second replica.
        fresh = proof_for(server, key, "GET", url, token)
        await replicas[1].authenticate(
            method="GET", url=url, authorization=f"DPoP {token}", dpop_proofs=[fresh]
        )
        # The key expires with the proof window: dpop_max_age + 2 * skew (60 + 60 s by default).
        keys = [k async for k in redis_clients[0].scan_iter(match=prefix + "*")]
        assert len(keys) == 2
        for k in keys:
            assert 110_000 < await redis_clients[0].pttl(k) <= 120_000
    finally:
        async for k in redis_clients[0].scan_iter(match=prefix + "*"):
            await redis_clients[0].delete(k)


async def test_redis_replay_store_honours_the_ttl(redis_clients: list[Any]) -> None:
    """Once its TTL has passed (Redis' own clock), a key is free again; before, both replicas refuse it."""
    prefix = f"portcullis-resource-test:{secrets.token_hex(8)}:"
    one, two = (RedisReplayStore(c, prefix=prefix) for c in redis_clients)
    key = replay_key("jkt", "jti")
    try:
        assert await one.first_use(key, 0.3, 0)
        assert not await two.first_use(key, 0.3, 0)
        assert not await one.first_use(key, 0.3, 0)
        await asyncio.sleep(0.45)
        assert await two.first_use(key, 0.3, 0)
        assert not await one.first_use(key, 0.3, 0)
    finally:
        await redis_clients[0].delete(prefix + key)
