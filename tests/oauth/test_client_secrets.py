"""Client secrets are checked off the event loop and recent successes are remembered, bound to the stored
hash (app.oauth.client_secrets)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app.oauth import client_secrets
from app.oauth.client_secrets import SecretVerifier
from app.oauth.clients import hash_client_secret
from tests.conftest import FakeClock

SECRET = "a-long-client-secret-for-the-broker-0123456789"


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = client_secrets.verify_client_secret

    def counted(secret: str, encoded: str) -> bool:
        calls.append(secret)
        return real(secret, encoded)

    monkeypatch.setattr(client_secrets, "verify_client_secret", counted)
    return calls


async def test_right_and_wrong_secrets(scrypt_calls: list[str]) -> None:
    verifier = SecretVerifier(FakeClock())
    stored = hash_client_secret(SECRET)
    assert await verifier.verify("broker", SECRET, stored) is True
    assert await verifier.verify("broker", SECRET + "x", stored) is False
    assert await verifier.verify("other", SECRET, stored) is True  # the memo is per client
    assert len(scrypt_calls) == 3


async def test_a_verified_secret_is_recognised_without_scrypt_until_the_memo_expires(
    scrypt_calls: list[str],
) -> None:
    clock = FakeClock()
    verifier = SecretVerifier(clock, ttl=timedelta(minutes=10))
    stored = hash_client_secret(SECRET)
    assert await verifier.verify("broker", SECRET, stored)
    assert await verifier.verify("broker", SECRET, stored)
    assert len(scrypt_calls) == 1
    assert not await verifier.verify("broker", "wrong-secret-of-the-same-length-000000000000", stored)
    assert len(scrypt_calls) == 2  # a wrong secret always pays for scrypt
    clock.advance(11 * 60)
    assert await verifier.verify("broker", SECRET, stored)
    assert len(scrypt_calls) == 3


async def test_a_changed_secret_invalidates_the_memo(scrypt_calls: list[str]) -> None:
    verifier = SecretVerifier(FakeClock())
    old = hash_client_secret(SECRET)
    assert await verifier.verify("broker", SECRET, old)
    new = hash_client_secret("the-rotated-secret-of-the-broker-0123456789")
    assert not await verifier.verify("broker", SECRET, new)
    assert len(scrypt_calls) == 2


async def test_the_event_loop_keeps_running_during_scrypt() -> None:
    verifier = SecretVerifier(FakeClock(), concurrency=1)
    stored = hash_client_secret(SECRET)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    for i in range(3):  # three wrong secrets: three scrypt runs in the worker thread
        assert not await verifier.verify("broker", f"{SECRET}-{i}", stored)
    done.set()
    await task
    assert ticks > 30  # inline scrypt would have let the ticker run about once per check
