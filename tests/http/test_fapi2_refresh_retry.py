"""FAPI 2.0 Security Profile 5.3.2.1 (10) against RFC 9700 section 4.14.2 at POST /token: a client that lost
the response of a rotation presents the previous refresh token again and succeeds, within
``refresh_retry_window`` and while the successor is unused (the successor is revoked); every other reuse
still ends the whole family. On SQLite and PostgreSQL, through HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.storage.models import RefreshToken
from tests.audit.tamper import rows
from tests.conftest import FakeClock, Harness, make_settings, running_app
from tests.flow.client import Flow, Key, authorize, secret_client, write_clients

ISSUER = "http://127.0.0.1:8000"
CB = "https://broker.example/cb"
APP_CB = "https://wallet-app.example/cb"
SECRET = "a-long-client-secret-for-the-broker-0123456789"


def public_client() -> dict[str, Any]:
    return {
        "client_id": "wallet-app",
        "redirect_uris": [APP_CB],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    }


async def harness_for(tmp_path: Path, database_url: str, **settings: Any) -> running_app:
    broker = secret_client("broker", SECRET, [CB], "client_secret_post")
    clients = write_clients(tmp_path / "clients.json", [broker, public_client()])
    return running_app(
        make_settings(tmp_path, database_url=database_url, clients_file=clients, **settings), FakeClock()
    )


@pytest.fixture
async def h(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    async with await harness_for(tmp_path, database_url) as harness:
        yield harness


def broker(h: Harness) -> Flow:
    return Flow(h.client, ISSUER, "broker", CB, auth={"client_secret": SECRET})


async def signed_in(flow: Flow, wallet: Any, *, dpop: bool = False) -> dict[str, Any]:
    got = await authorize(flow, wallet, pushed=False)
    form = {"grant_type": "authorization_code", "code": got.code, "code_verifier": got.verifier}
    reply = await flow.token({**form, "redirect_uri": flow.redirect_uri}, dpop=dpop)
    assert reply.status_code == 200, reply.text
    tokens: dict[str, Any] = reply.json()
    return tokens


async def refresh(flow: Flow, token: str, *, dpop: bool = False) -> Any:
    return await flow.token({"grant_type": "refresh_token", "refresh_token": token}, dpop=dpop)


def refused(reply: Any, *words: str) -> None:
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"] == "invalid_grant"
    for word in words:
        assert word in reply.json()["error_description"], reply.text


async def usable(h: Harness, tokens: dict[str, Any]) -> bool:
    """Is the session live: its access token accepted by userinfo (which agrees with introspection)?"""
    answer = await h.client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code == 200


async def live_in_family(h: Harness, family: str) -> int:
    """How many refresh tokens of the family could still be rotated: exactly one while it lives."""
    engine = h.app.state.provider.store.engine
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).where(
                RefreshToken.family_id == family,
                RefreshToken.rotated_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
        )
    return int(count or 0)


async def sid(h: Harness, flow: Flow, tokens: dict[str, Any]) -> str:
    described = await flow.http.post(
        "/introspect", data={"token": tokens["refresh_token"], **flow.client_auth()}
    )
    assert described.json()["active"] is True, described.text
    family: str = described.json()["sid"]
    return family


async def test_retry_within_the_window_gets_a_fresh_pair(h: Harness, wallet: Any) -> None:
    flow = broker(h)
    first = await signed_in(flow, wallet)
    family = await sid(h, flow, first)
    lost = await refresh(flow, first["refresh_token"])  # the client never sees this response
    assert lost.status_code == 200, lost.text
    h.clock.advance(30)
    retried = await refresh(flow, first["refresh_token"])
    assert retried.status_code == 200, retried.text
    fresh = retried.json()
    assert fresh["refresh_token"] not in (first["refresh_token"], lost.json()["refresh_token"])
    # The unused successor is dead; the fresh pair is the family's current one.
    refused(await refresh(flow, lost.json()["refresh_token"]), "revoked")
    assert await live_in_family(h, family) == 1
    assert await usable(h, fresh)
    onwards = await refresh(flow, fresh["refresh_token"])
    assert onwards.status_code == 200, onwards.text
    log = await rows(h.app.state.provider.store.engine)
    retries = [r for r in log if r["type"] == "token.refreshed" and r["reason"] == "retried"]
    assert len(retries) == 1 and json.loads(retries[0]["data"])["retry"] is True
    assert SECRET not in str(log) and first["refresh_token"] not in str(log)


async def test_retry_after_the_successor_was_used_revokes_the_family(h: Harness, wallet: Any) -> None:
    flow = broker(h)
    first = await signed_in(flow, wallet)
    second = (await refresh(flow, first["refresh_token"])).json()
    third = await refresh(flow, second["refresh_token"])  # the successor is used: first may not retry
    assert third.status_code == 200, third.text
    refused(await refresh(flow, first["refresh_token"]), "already used", "revoked")
    refused(await refresh(flow, third.json()["refresh_token"]), "revoked")
    assert not await usable(h, third.json())


async def test_grandparent_reuse_revokes_the_family(h: Harness, wallet: Any) -> None:
    flow = broker(h)
    first = await signed_in(flow, wallet)
    second = (await refresh(flow, first["refresh_token"])).json()
    third = (await refresh(flow, second["refresh_token"])).json()
    fourth = (await refresh(flow, third["refresh_token"])).json()
    # second is the current token's grandparent: its own successor (third) was used.
    refused(await refresh(flow, second["refresh_token"]), "already used", "revoked")
    refused(await refresh(flow, fourth["refresh_token"]), "revoked")
    refused(await refresh(flow, third["refresh_token"]), "revoked")  # not even the parent retries now
    assert not await usable(h, fourth)


async def test_retry_after_the_window_revokes_the_family(h: Harness, wallet: Any) -> None:
    flow = broker(h)
    first = await signed_in(flow, wallet)
    second = (await refresh(flow, first["refresh_token"])).json()
    h.clock.advance(h.settings.refresh_retry_window)
    refused(await refresh(flow, first["refresh_token"]), "already used", "revoked")
    refused(await refresh(flow, second["refresh_token"]), "revoked")
    assert not await usable(h, second)


async def test_concurrent_retries_leave_exactly_one_live_pair(h: Harness, wallet: Any) -> None:
    """Two retries at once: each is atomic, so the family ends with exactly one live refresh token, one of
    the returned ones; a retry that lost the race at the database is refused without ending the family."""
    flow = broker(h)
    first = await signed_in(flow, wallet)
    family = await sid(h, flow, first)
    assert (await refresh(flow, first["refresh_token"])).status_code == 200
    replies = await asyncio.gather(*(refresh(flow, first["refresh_token"]) for _ in range(2)))
    won = [r.json() for r in replies if r.status_code == 200]
    for reply in replies:
        if reply.status_code != 200:
            refused(reply, "concurrent request")
    assert won, [r.text for r in replies]
    assert await live_in_family(h, family) == 1
    outcomes = [(await refresh(flow, t["refresh_token"])).status_code for t in won]
    assert outcomes.count(200) == 1, outcomes  # exactly one returned pair is the family's current one


async def test_window_zero_disables_the_retry(tmp_path: Path, database_url: str, wallet: Any) -> None:
    async with await harness_for(tmp_path, database_url, refresh_retry_window=0) as h:
        flow = broker(h)
        first = await signed_in(flow, wallet)
        second = (await refresh(flow, first["refresh_token"])).json()
        refused(await refresh(flow, first["refresh_token"]), "already used", "revoked")
        refused(await refresh(flow, second["refresh_token"]), "revoked")


async def test_public_client_retries_only_with_its_dpop_key(h: Harness, wallet: Any) -> None:
    """A public client's family bound to a DPoP key may retry, proving that key; without the proof the
    retry is refused and nothing changes."""
    flow = Flow(h.client, ISSUER, "wallet-app", APP_CB, dpop=Key())
    first = await signed_in(flow, wallet, dpop=True)
    lost = await refresh(flow, first["refresh_token"], dpop=True)
    assert lost.status_code == 200, lost.text
    refused(await refresh(flow, first["refresh_token"]), "DPoP key")
    retried = await refresh(flow, first["refresh_token"], dpop=True)
    assert retried.status_code == 200, retried.text
    refused(await refresh(flow, lost.json()["refresh_token"], dpop=True), "revoked")
    assert (await refresh(flow, retried.json()["refresh_token"], dpop=True)).status_code == 200


async def test_public_bearer_refresh_token_gets_no_retry(h: Harness, wallet: Any) -> None:
    """Without a client secret or a DPoP key, rotation is the only protection: any reuse ends the family."""
    flow = Flow(h.client, ISSUER, "wallet-app", APP_CB)
    first = await signed_in(flow, wallet)
    second = (await refresh(flow, first["refresh_token"])).json()
    refused(await refresh(flow, first["refresh_token"]), "already used", "revoked")
    refused(await refresh(flow, second["refresh_token"]), "revoked")
