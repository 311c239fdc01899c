"""How fast a registry revocation takes effect: from the revoking block to the first refused refresh.

Real anvil, real ComplianceRegistry, the app in-process with its log follower polling every second (the
default), the revocations sent by ``portcullis registry revoke``. Target: under 2 s with 1 s polling.

    .venv/bin/python bench/revocation_delay.py [--rounds 10] [--poll 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eth_account import Account
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.cli.main import build_parser
from app.settings import Settings
from bench.machine import machine_note
from tests.anvil import Anvil, deploy, send
from tests.conftest import FakeClock, make_settings, running_app, sign, siwe_text


async def cli(settings: Settings, *argv: str) -> None:
    args = build_parser().parse_args(["registry", *argv])
    with contextlib.redirect_stdout(io.StringIO()):
        code = await asyncio.to_thread(args.fn, settings, args)
    if code != 0:
        raise RuntimeError(f"portcullis registry {argv[0]} failed")


async def round_trip(h, settings: Settings) -> float:  # type: ignore[no-untyped-def]
    wallet = Account.create()
    until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    await cli(
        settings,
        "grant",
        wallet.address,
        "--residence",
        "DE",
        "--class",
        "professional",
        "--kyc-level",
        "2",
        "--valid-until",
        until,
    )
    deadline = time.monotonic() + 15
    while True:
        offer = (await h.client.post("/siwe/nonce")).json()
        message = siwe_text(offer, wallet.address, issued_at=h.clock.now())
        reply = await h.client.post(
            "/siwe/verify", json={"message": message, "signature": sign(wallet, message)}
        )
        if reply.status_code == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    tokens = reply.json()
    await cli(settings, "revoke", wallet.address, "--reason", "bench")
    revoked = time.monotonic()  # the CLI returns once the revoking block is mined
    while True:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": "portcullis-demo",
        }
        reply = await h.client.post("/token", data=form)
        if reply.status_code != 200:
            return time.monotonic() - revoked
        tokens = reply.json()
        await asyncio.sleep(0.02)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args()
    print(f"machine: {machine_note()}")
    with Anvil() as chain, tempfile.TemporaryDirectory() as tmp:
        admin, officer = chain.accounts[0], chain.accounts[1]
        registry = deploy(chain.w3, "ComplianceRegistry", admin, sender=admin)
        for role in ("ATTESTER_ROLE", "REVOKER_ROLE"):
            send(registry.functions.grantRole(Web3.keccak(text=role), officer), admin)
        settings = make_settings(
            Path(tmp),
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
            chains=[
                {
                    "chain_id": 31337,
                    "rpc_urls": [chain.url],
                    "registry": registry.address,
                    "poll_seconds": args.poll,
                }
            ],
            registry_key=chain.private_keys[1],
        )
        async with running_app(settings, FakeClock()) as h:
            delays = [await round_trip(h, settings) for _ in range(args.rounds)]
    p95 = sorted(delays)[max(0, int(len(delays) * 0.95) - 1)]
    verdict = "PASS" if max(delays) < 2.0 else "MISS"
    print(f"polling every {args.poll:g} s, {len(delays)} revocations")
    print(
        f"delay from revoking block to refused refresh: median {statistics.median(delays):.2f} s, "
        f"p95 {p95:.2f} s, max {max(delays):.2f} s; target < 2 s: {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
