"""The compliance loop end to end on a real anvil: a compliance officer grants with the CLI, the wallet signs
in and its token carries the compliance claim when the `compliance` scope asks for it (a trading scope alone
gets only what the backend enforces), the officer revokes with the CLI, and within seconds the
server refuses refresh and new sign-ins. The measured delay is printed (the benchmark is
bench/revocation_delay.py; target < 2 s from the revoking block with 1 s polling)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from eth_account import Account

from app.cli.main import build_parser
from app.settings import Settings
from tests.anvil import Anvil
from tests.audit.tamper import rows
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text

POLL = 1.0
DELAY_BOUND = 3.0  # seconds: generous for a loaded CI machine; the benchmark holds the 2 s target


def settings_for(tmp_path: Path, sqlite_url: str, chain: Anvil, registry: str, **extra: Any) -> Settings:
    config = {"chain_id": 31337, "rpc_urls": [chain.url], "registry": registry, "poll_seconds": POLL}
    return make_settings(
        tmp_path,
        database_url=sqlite_url,
        chains=[{**config, **extra}],
        registry_key=chain.private_keys[1],
        # The tests poll sign-ins while the follower catches up: on a slow machine that is dozens of refusals
        # of one wallet, which the risk engine rightly scores as a failure spike. Risk has its own tests.
        risk_step_up_at=1000,
        risk_deny_at=1000,
    )


async def registry_cli(settings: Settings, *argv: str) -> int:
    args = build_parser().parse_args(["registry", *argv])
    code: int = await asyncio.to_thread(args.fn, settings, args)
    return code


async def sign_in(h: Harness, wallet: Any, scope: str = "openid compliance") -> Any:
    offer = (await h.client.post("/siwe/nonce")).json()
    message = siwe_text(offer, wallet.address, issued_at=h.clock.now())
    body = {"message": message, "signature": sign(wallet, message), "scope": scope}
    return await h.client.post("/siwe/verify", json=body)


def unverified(token: str) -> Any:
    return jwt.decode(token, options={"verify_signature": False})


async def refresh(h: Harness, token: str) -> Any:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "portcullis-demo"}
    return await h.client.post("/token", data=form)


async def test_grant_sign_in_revoke_refused(
    chain: Anvil, registry: str, tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path, sqlite_url, chain, registry)
    wallet = Account.create()
    async with running_app(settings, FakeClock()) as h:
        refused = await sign_in(h, wallet)
        assert refused.status_code == 403 and refused.json()["error"] == "not_eligible"
        assert "no_record" in refused.json()["error_description"]

        until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
        grant = ["grant", wallet.address, "--residence", "DE", "--class", "professional", "--kyc-level", "2"]
        assert await registry_cli(settings, *grant, "--valid-until", until) == 0

        # the refusal above is cached; the follower sees RecordSet within one poll and drops it
        reply = await sign_in(h, wallet)
        granted_at = time.monotonic()
        while reply.status_code == 403 and time.monotonic() - granted_at < 10:
            await asyncio.sleep(0.1)
            reply = await sign_in(h, wallet)
        assert reply.status_code == 200, reply.text
        tokens = reply.json()
        claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
        compliance = claims["compliance"]
        assert compliance["residence"] == "DE" and compliance["investor_class"] == "professional"
        assert (
            compliance["kyc_level"] == 2
            and compliance["chain_id"] == 31337
            and compliance["source"] == "registry"
        )
        assert claims["exp"] <= compliance["valid_until"]
        assert unverified(tokens["id_token"])["compliance"] == compliance
        trading = await sign_in(h, wallet, "openid perps:trade")
        assert trading.status_code == 200 and trading.json()["scope"] == "openid perps:trade", trading.text
        assert "compliance" not in unverified(trading.json()["id_token"])
        minimal = unverified(trading.json()["access_token"])["compliance"]
        assert set(minimal) == {"source", "chain_id", "block", "investor_class", "valid_until"}, minimal
        assert (
            minimal["investor_class"] == "professional"
            and minimal["valid_until"] == compliance["valid_until"]
        )
        rotated = await refresh(h, tokens["refresh_token"])
        assert rotated.status_code == 200 and "compliance" in jwt.decode(
            rotated.json()["access_token"], options={"verify_signature": False}
        )
        tokens = rotated.json()

        assert await registry_cli(settings, "revoke", wallet.address, "--reason", "kyc-withdrawn") == 0
        revoked_at = time.monotonic()
        delay = None
        while time.monotonic() - revoked_at < 10:
            reply = await refresh(h, tokens["refresh_token"])
            if reply.status_code != 200:
                delay = time.monotonic() - revoked_at
                break
            tokens = reply.json()
            await asyncio.sleep(0.05)
        assert delay is not None, "refresh was never refused"
        with capsys.disabled():
            print(f"\nrevocation took effect {delay:.2f} s after the revoking block (polling every {POLL} s)")
        assert delay < DELAY_BOUND
        assert reply.json()["error"] == "invalid_grant"

        again = await sign_in(h, wallet)
        assert again.status_code == 403 and "revoked" in again.json()["error_description"]
        log = await rows(h.app.state.provider.store.engine)
        kinds = [r["type"] for r in log]
        assert "chain.change" in kinds and "token.subject_revoked" in kinds


async def test_rpc_down_or_lying_fails_closed(
    chain: Anvil, registry: str, tmp_path: Path, sqlite_url: str
) -> None:
    wallet = Account.create()
    down = make_settings(
        tmp_path,
        database_url=sqlite_url,
        chains=[{"chain_id": 31337, "rpc_urls": ["http://127.0.0.1:1"], "registry": registry}],
    )
    async with running_app(down, FakeClock()) as h:
        reply = await sign_in(h, wallet)
        assert reply.status_code == 503 and reply.json()["error"] == "temporarily_unavailable"
        assert "access_token" not in reply.text
    # the RPC answers for 31337; configure it as chain 1 instead: the reader must refuse to trust it
    lying = make_settings(
        tmp_path / "lying",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/lying.db",
        chains=[{"chain_id": 1, "rpc_urls": [chain.url], "registry": registry}],
    )
    async with running_app(lying, FakeClock()) as h:
        offer = (await h.client.post("/siwe/nonce")).json()
        assert offer["chain_id"] == 1
        message = siwe_text(offer, wallet.address, issued_at=h.clock.now())
        reply = await h.client.post(
            "/siwe/verify", json={"message": message, "signature": sign(wallet, message)}
        )
        assert reply.status_code == 503 and reply.json()["error"] == "temporarily_unavailable"
