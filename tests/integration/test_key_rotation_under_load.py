"""A relying party that caches the JWKS for its max-age verifies every token across a key rotation run by
``portcullis keys rotate`` while two replicas issue tokens under load (OpenID Connect Core 10.1.1: a new
signing key is published before it is used; docs/ARCHITECTURE.md, "Keys")."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from eth_account import Account

from tests.conftest import TEST_SECRET, postgres_database, sign, siwe_text
from tests.flow.client import Key, client_assertion, service_client, write_clients
from tests.integration.server import ServerProcess, free_port

MAX_AGE = 2  # seconds: PORTCULLIS_JWKS_MAX_AGE_SECONDS
RELOAD = 1  # seconds: PORTCULLIS_KEY_RELOAD_SECONDS


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with postgres_database() as url:
        yield url


class CachingRelyingParty:
    """Verifies tokens with the JWKS it fetched last, refetched only once its ``max-age`` has run out, and
    never on an unknown kid: it trusts the publication lead, as many relying-party libraries do."""

    def __init__(self, jwks_urls: list[str], issuer: str) -> None:
        self.jwks_urls, self.issuer = jwks_urls, issuer
        self.keys: dict[str, dict[str, Any]] = {}
        self.expires = 0.0
        self.fetches = 0
        self.lock = threading.Lock()

    def _jwks(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            if time.monotonic() >= self.expires:
                url = self.jwks_urls[self.fetches % len(self.jwks_urls)]  # as a load balancer would
                reply = httpx.get(url, timeout=5)
                max_age = re.fullmatch(r"max-age=(\d+)", reply.headers["cache-control"])
                assert max_age is not None, reply.headers["cache-control"]
                self.keys = {k["kid"]: k for k in reply.json()["keys"]}
                self.expires = time.monotonic() + int(max_age.group(1))
                self.fetches += 1
            return self.keys

    def verify(self, token: str) -> str:
        header = jwt.get_unverified_header(token)
        jwk = self._jwks().get(header["kid"])
        if jwk is None:
            raise AssertionError(f"kid {header['kid']} is not in the cached JWKS")
        jwt.decode(
            token,
            jwt.PyJWK(jwk).key,
            algorithms=[jwk["alg"]],
            issuer=self.issuer,
            options={"verify_aud": False},
        )
        kid: str = header["kid"]
        return kid


def _client_credentials(url: str, issuer: str, key: Key, rp: CachingRelyingParty, out: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=5) as client:
        reply = client.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "risk-engine",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": client_assertion(key, "risk-engine", issuer),
            },
        )
    assert reply.status_code == 200, reply.text
    out.append(rp.verify(reply.json()["access_token"]))


def _sign_in(url: str, rp: CachingRelyingParty, out: list[str]) -> None:
    wallet = Account.create()
    with httpx.Client(base_url=url, timeout=5) as client:
        offer = client.post("/siwe/nonce").json()
        message = siwe_text(offer, wallet.address, issued_at=datetime.now(UTC))
        reply = client.post("/siwe/verify", json={"message": message, "signature": sign(wallet, message)})
    assert reply.status_code == 200, reply.text
    out.append(rp.verify(reply.json()["id_token"]))
    out.append(rp.verify(reply.json()["access_token"]))


def test_cached_jwks_verifies_every_token_across_a_rotation(pg_url: str, tmp_path: Path) -> None:
    key = Key()
    clients = write_clients(
        tmp_path / "clients.json", [service_client("risk-engine", key, "service:positions:read")]
    )
    issuer = f"http://127.0.0.1:{free_port()}"  # the public name both replicas answer for
    env = {
        "PORTCULLIS_ISSUER": issuer,
        "PORTCULLIS_SECRET_KEY": TEST_SECRET,
        "PORTCULLIS_DATABASE_URL": pg_url,
        "PORTCULLIS_CLIENTS_FILE": str(clients),
        "PORTCULLIS_DEV_CHAIN": "false",
        "PORTCULLIS_RATE_LIMITS": "false",  # several clients on one IP, far above a person's rate
        "PORTCULLIS_JWKS_MAX_AGE_SECONDS": str(MAX_AGE),
        "PORTCULLIS_KEY_RELOAD_SECONDS": str(RELOAD),
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    stop = threading.Event()
    kids: list[str] = []
    failures: list[str] = []
    with ServerProcess(tmp_path / "a", **env) as a, ServerProcess(tmp_path / "b", **env) as b:
        replicas = [a.url, b.url]

        def work(n: int) -> None:
            rp = CachingRelyingParty([f"{u}/jwks" for u in replicas[n % 2 :] + replicas[: n % 2]], issuer)
            i = 0
            while not stop.is_set():
                url = replicas[i % 2]
                try:
                    if n == 0:
                        _sign_in(url, rp, kids)
                    else:
                        _client_credentials(url, issuer, key, rp, kids)
                except Exception as exc:  # every failure is collected and fails the test below
                    failures.append(f"{url}: {exc}")
                i += 1
                stop.wait(0.02)  # steady load, leaving the CPU to the servers and the CLI on a small machine

        workers = [threading.Thread(target=work, args=(n,)) for n in range(3)]
        for w in workers:
            w.start()
        try:
            time.sleep(MAX_AGE + 1)  # every relying party holds a JWKS fetched before the rotation
            old = set(kids)
            rotated = a.portcullis("keys", "rotate", timeout=120)
            assert rotated.returncode == 0, rotated.stderr
            rows = [json.loads(line) for line in rotated.stdout.splitlines()]
            (new,) = [r for r in rows if r["kid"] not in old]
            assert f"new key {new['kid']} is published now and starts signing at" in rotated.stderr
            starts = datetime.fromisoformat(new["activates_at"])
            # keep the load on until both replicas have signed with the new key for a few max-ages
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and not (
                datetime.now(UTC) > starts and kids.count(new["kid"]) >= 40
            ):
                time.sleep(0.1)
            time.sleep(MAX_AGE)
        finally:
            stop.set()
            for w in workers:
                w.join(timeout=10)
        listed = a.portcullis("keys", "list", timeout=120)
    assert failures == [], failures[:5]
    assert len(old) == 1 and new["state"] == "next"  # published, not yet signing, when rotate returned
    assert set(kids) == old | {new["kid"]}  # both keys signed under load, and nothing else
    assert kids.count(new["kid"]) >= 40, (len(kids), kids.count(new["kid"]))
    states = {r["kid"]: r["state"] for r in map(json.loads, listed.stdout.splitlines())}
    assert states == {old.pop(): "retired-published", new["kid"]: "signing"}
