"""Client authentication does not tell registered client ids from unknown ones, by message or by time.

A wrong secret for a registered ``client_id`` costs an scrypt; an unknown ``client_id`` must cost the same,
including after the client's right secret was remembered by the HMAC fast path (app.oauth.client_secrets).
This is a security property, not a speed claim: each test compares the medians of interleaved attempts of
both kinds and asserts their ratio stays within 0.5-2x, which holds on a loaded machine because both kinds
meet the same load. Before the fix the unknown id answered in a twentieth of the time.
"""

from __future__ import annotations

import base64
import secrets
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import FakeClock, Harness, make_settings, running_app
from tests.flow.client import Key, client_assertion, service_client, write_clients

SECRET = "the-broker-secret-0123456789-abcdefghij"
ROUNDS = 15
CC = {"grant_type": "client_credentials", "scope": "service:positions:read"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def key() -> Key:
    return Key()


@pytest.fixture
async def h(tmp_path: Path, sqlite_url: str, key: Key) -> AsyncIterator[Harness]:
    broker = {
        "client_id": "broker",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": SECRET,
        "scope": "service:positions:read",
    }
    clients = write_clients(
        tmp_path / "clients.json", [broker, service_client("svc", key, "service:positions:read")]
    )
    # Thresholds far above the attempts made here: this file measures time, not locks.
    settings = make_settings(
        tmp_path,
        database_url=sqlite_url,
        clients_file=clients,
        lock_ip_threshold=10_000,
        client_auth_lock_threshold=10_000,
        client_auth_failure_budget=10_000,
    )
    async with running_app(settings, FakeClock()) as harness:
        yield harness


Attempt = Callable[[], Awaitable[httpx.Response]]


async def medians(first: Attempt, second: Attempt) -> tuple[float, float]:
    """Median seconds of ``ROUNDS`` calls of each, interleaved (ABAB...) so both meet the same load."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(ROUNDS):
        for attempt, sink in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            reply = await attempt()
            sink.append(time.perf_counter() - start)
            assert reply.status_code == 401, reply.text
            assert reply.json() == {
                "error": "invalid_client",
                "error_description": "client authentication failed",
            }
    return statistics.median(times[0]), statistics.median(times[1])


def assert_alike(unknown: float, known: float) -> None:
    ratio = unknown / known
    print(f"median unknown {unknown * 1000:.1f} ms, known-wrong {known * 1000:.1f} ms, ratio {ratio:.2f}")
    assert 0.5 <= ratio <= 2.0, f"unknown {unknown * 1000:.1f} ms vs known {known * 1000:.1f} ms"


async def test_unknown_client_id_costs_what_a_wrong_secret_costs(h: Harness) -> None:
    ok = await h.client.post("/token", data=CC, headers=basic("broker", SECRET))
    assert ok.status_code == 200, ok.text  # the right secret is now in the HMAC fast path's memo

    async def unknown() -> httpx.Response:
        return await h.client.post("/token", data=CC, headers=basic(f"nobody-{secrets.token_hex(4)}", SECRET))

    async def wrong() -> httpx.Response:
        return await h.client.post("/token", data=CC, headers=basic("broker", SECRET + secrets.token_hex(4)))

    assert_alike(*await medians(unknown, wrong))


async def test_secret_for_a_client_of_another_method_costs_the_same(h: Harness) -> None:
    # "svc" is registered for private_key_jwt: a secret for it is refused after the same work and words
    async def other_method() -> httpx.Response:
        return await h.client.post("/token", data=CC, headers=basic("svc", SECRET))

    async def wrong() -> httpx.Response:
        return await h.client.post("/token", data=CC, headers=basic("broker", SECRET + "x"))

    assert_alike(*await medians(other_method, wrong))


async def test_unknown_issuer_of_an_assertion_costs_what_a_bad_signature_costs(h: Harness, key: Key) -> None:
    forger = Key(kid=key.kid)  # the registered kid, a key the server does not know

    def form(client_id: str) -> dict[str, str]:
        return {
            **CC,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(forger, client_id, h.settings.issuer),
        }

    async def unknown() -> httpx.Response:
        return await h.client.post("/token", data=form(f"nobody-{secrets.token_hex(4)}"))

    async def forged() -> httpx.Response:
        return await h.client.post("/token", data=form("svc"))

    assert_alike(*await medians(unknown, forged))
