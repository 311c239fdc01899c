"""RFC 7591 ``jwks_uri`` for private_key_jwt clients, against a real HTTP server on 127.0.0.1.

The server runs in a thread (http.server); what it answers is changed between requests to play key
rotation, broken documents and outages. Every failure must be ``invalid_client``, never another exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.errors import InvalidClient
from app.oauth.client_auth import ASSERTION_TYPE, MemoryAssertionJtiStore, authenticate
from app.oauth.client_jwks import DEFAULT_MIN_REFETCH, DEFAULT_TTL, CachedClientKeys, HttpJwksFetcher
from app.oauth.clients import Client, ClientRegistry, parse_client
from tests.conftest import FakeClock

ISSUER = "https://auth.example.com"
KEY_A = ec.generate_private_key(ec.SECP256R1())
KEY_B = ec.generate_private_key(ec.SECP256R1())


def jwk(key: Any, kid: str, **extra: Any) -> dict[str, Any]:
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, **extra}


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 whose answer the test sets; counts the requests it receives."""

    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        self.delay = 0.0
        self.content_length = True
        self.headers: dict[str, str] = {}
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                time.sleep(server.delay)
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                for name, value in server.headers.items():
                    self.send_header(name, value)
                if server.content_length:
                    self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up (timeout, size cap)
                    self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def serve(self, *keys: dict[str, Any]) -> None:
        self.body = json.dumps({"keys": list(keys)}).encode()
        self.status = 200

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[JwksServer]:
    s = JwksServer()
    s.serve(jwk(KEY_A, "a"))
    yield s
    s.close()


def client_for(uri: str) -> Client:
    return parse_client(
        {
            "client_id": "svc",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": uri,
        }
    )


class Auth:
    """authenticate() for client "svc" with fresh assertions, sharing one key cache and one jti store."""

    def __init__(self, uri: str, clock: FakeClock, fetcher: HttpJwksFetcher | None = None) -> None:
        self.clock = clock
        self.registry = ClientRegistry([client_for(uri)])
        self.keys = CachedClientKeys(fetcher or HttpJwksFetcher(allow_loopback_http=True), clock)
        self.jtis = MemoryAssertionJtiStore(clock)
        self.count = 0

    def assertion(self, key: Any, kid: str) -> str:
        self.count += 1
        now = int(self.clock.now().timestamp())
        claims = {"iss": "svc", "sub": "svc", "aud": ISSUER, "exp": now + 60, "iat": now}
        claims["jti"] = f"j{self.count}"
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})

    async def __call__(self, key: Any = KEY_A, kid: str = "a") -> str:
        form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": self.assertion(key, kid)}
        client = await authenticate(
            self.registry,
            authorization_header=None,
            form=form,
            issuer=ISSUER,
            token_endpoint=f"{ISSUER}/token",
            now=self.clock.now(),
            jti_store=self.jtis,
            client_keys=self.keys,
        )
        return client.client_id

    async def refused(self, key: Any = KEY_A, kid: str = "a") -> str:
        """Why the assertion was refused: logged only; the client is told what an unknown client is told."""
        with pytest.raises(InvalidClient) as caught:
            await self(key, kid)
        assert caught.value.description == "client authentication failed"
        return caught.value.debug or ""


AFTER_MIN_REFETCH = DEFAULT_MIN_REFETCH.total_seconds() + 1


async def test_keys_come_from_the_uri_and_are_cached(server: JwksServer, clock: FakeClock) -> None:
    auth = Auth(server.url, clock)
    assert await auth() == "svc"
    assert await auth() == "svc"
    assert server.hits == 1
    clock.advance(DEFAULT_TTL.total_seconds())  # the cached set has expired: fetched again
    assert await auth() == "svc"
    assert server.hits == 2


async def test_key_rotation_at_the_uri(server: JwksServer, clock: FakeClock) -> None:
    auth = Auth(server.url, clock)
    assert await auth(KEY_A, "a") == "svc"
    server.serve(jwk(KEY_B, "b"))  # the client rotates: only the new key is published
    clock.advance(AFTER_MIN_REFETCH)
    assert await auth(KEY_B, "b") == "svc"  # unknown kid: one refetch finds it
    assert server.hits == 2
    assert "kid" in await auth.refused(KEY_A, "a")  # the old key is gone (and no refetch so soon)
    assert server.hits == 2


async def test_unknown_kids_cannot_make_us_hammer_the_uri(server: JwksServer, clock: FakeClock) -> None:
    auth = Auth(server.url, clock)
    assert await auth() == "svc"
    for i in range(20):
        assert "kid" in await auth.refused(KEY_B, f"made-up-{i}")
    assert server.hits == 1
    clock.advance(AFTER_MIN_REFETCH)
    for i in range(20):
        await auth.refused(KEY_B, f"again-{i}")
    assert server.hits == 2  # one refetch per interval, however many unknown kids arrive
    assert await auth() == "svc"


async def test_concurrent_requests_share_one_fetch(server: JwksServer, clock: FakeClock) -> None:
    server.delay = 0.2
    auth = Auth(server.url, clock)
    assert await asyncio.gather(*(auth() for _ in range(10))) == ["svc"] * 10
    assert server.hits == 1


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize(
    ("body", "status", "why"),
    [
        (b"not json", 200, "not JSON"),
        (b"[]", 200, "JWK set"),
        (json.dumps({"keys": []}).encode(), 200, "JWK set"),
        (json.dumps({"keys": [jwk(KEY_A, "a")], "extra": 1}).encode(), 200, "JWK set"),
        (json.dumps({"keys": [jwk(KEY_A, "a"), jwk(KEY_B, "a")]}).encode(), 200, "unique"),
        (json.dumps({"keys": [jwk(KEY_A, "a", d="AAAA")]}).encode(), 200, "private"),
        (json.dumps({"keys": [jwk(KEY_A, "a", alg="RS256")]}).encode(), 200, "alg"),
        (
            json.dumps(
                {
                    "keys": [
                        {
                            **RSAAlgorithm.to_jwk(
                                rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(),
                                as_dict=True,
                            ),
                            "kid": "a",
                        }
                    ]
                }
            ).encode(),
            200,
            "2048",
        ),
        (deep(5000), 200, "nests"),
        (json.dumps({"keys": [jwk(KEY_A, "a")]}).encode(), 404, "status 404"),
        (json.dumps({"keys": [jwk(KEY_A, "a")]}).encode(), 500, "status 500"),
    ],
)
async def test_unacceptable_documents(
    server: JwksServer, clock: FakeClock, body: bytes, status: int, why: str
) -> None:
    server.body, server.status = body, status
    auth = Auth(server.url, clock)
    assert "jwks_uri could not be fetched" in await auth.refused()
    with pytest.raises(InvalidClient) as caught:
        await auth.keys.keys(client_for(server.url), "a")
    assert why in (caught.value.debug or "")


async def test_redirects_are_not_followed(server: JwksServer, clock: FakeClock) -> None:
    other = JwksServer()
    try:
        other.serve(jwk(KEY_A, "a"))
        server.status, server.headers = 302, {"Location": other.url}
        auth = Auth(server.url, clock)
        await auth.refused()
        assert other.hits == 0
    finally:
        other.close()


@pytest.mark.parametrize("declared", [True, False])
async def test_size_cap(server: JwksServer, clock: FakeClock, declared: bool) -> None:
    server.content_length = declared  # without Content-Length the cap must hold while reading
    server.body = json.dumps({"keys": [jwk(KEY_A, "a", note="x" * 60_000)]}).encode()
    assert await Auth(server.url, clock)() == "svc"  # under 64 KiB: fine
    server.body = json.dumps({"keys": [jwk(KEY_A, "a", note="x" * 70_000)]}).encode()
    assert "jwks_uri could not be fetched" in await Auth(server.url, clock).refused()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_server_down(clock: FakeClock) -> None:
    auth = Auth(f"http://127.0.0.1:{closed_port()}/jwks", clock)
    assert "jwks_uri could not be fetched" in await auth.refused()


async def test_server_too_slow(server: JwksServer, clock: FakeClock) -> None:
    server.delay = 1.0
    auth = Auth(server.url, clock, HttpJwksFetcher(allow_loopback_http=True, timeout=0.2))
    started = time.monotonic()
    await auth.refused()
    assert time.monotonic() - started < 0.9


async def test_failures_are_rate_limited_too(server: JwksServer, clock: FakeClock) -> None:
    server.status = 500
    auth = Auth(server.url, clock)
    for _ in range(5):
        await auth.refused()
    assert server.hits == 1
    server.serve(jwk(KEY_A, "a"))
    clock.advance(AFTER_MIN_REFETCH)
    assert await auth() == "svc"
    assert server.hits == 2


async def test_a_failed_refetch_keeps_keys_until_their_ttl(server: JwksServer, clock: FakeClock) -> None:
    auth = Auth(server.url, clock)
    assert await auth() == "svc"
    server.status = 503
    clock.advance(AFTER_MIN_REFETCH)
    await auth.refused(KEY_B, "b")  # the probe for a new kid fails...
    assert server.hits == 2
    assert await auth() == "svc"  # ...but the keys fetched before still hold
    clock.advance(DEFAULT_TTL.total_seconds())
    assert "jwks_uri could not be fetched" in await auth.refused()  # never past their ttl
    assert server.hits == 3


async def test_encryption_keys_are_skipped(server: JwksServer, clock: FakeClock) -> None:
    enc = {**RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048).public_key(), as_dict=True)}
    server.serve(jwk(KEY_A, "a"), {**enc, "kid": "enc-1", "use": "enc", "alg": "RSA-OAEP-256"})
    assert await Auth(server.url, clock)() == "svc"


async def test_http_only_in_development(server: JwksServer, clock: FakeClock) -> None:
    auth = Auth(server.url, clock, HttpJwksFetcher(allow_loopback_http=False))
    assert "jwks_uri could not be fetched" in await auth.refused()
    assert server.hits == 0


async def test_without_a_key_source_no_jwks_uri_client(server: JwksServer, clock: FakeClock) -> None:
    auth = Auth(server.url, clock)
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": auth.assertion(KEY_A, "a")}
    with pytest.raises(InvalidClient):
        await authenticate(
            auth.registry,
            authorization_header=None,
            form=form,
            issuer=ISSUER,
            token_endpoint=f"{ISSUER}/token",
            now=clock.now(),
            jti_store=auth.jtis,
        )
    assert server.hits == 0
