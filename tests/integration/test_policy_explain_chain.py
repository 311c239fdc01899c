"""``portcullis policy explain`` against a real chain gives the sign-in's answer: a real ``portcullis``
process reads the wallet's record on anvil (a US person, granted with ``portcullis registry grant``), shows
the chain's eligibility rule first and refuses with ``us_person``, exactly as ``/siwe/verify`` refuses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from tests.anvil import Anvil
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text
from tests.integration.server import ServerProcess

UNTIL = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()


def portcullis(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_explain_refuses_a_us_person_as_the_sign_in_does(
    chain: Anvil, registry: str, tmp_path: Path, sqlite_url: str
) -> None:
    chains = [{"chain_id": 31337, "rpc_urls": [chain.url], "registry": registry}]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env |= {
        "PORTCULLIS_DATA_DIR": str(tmp_path),
        "PORTCULLIS_CHAINS": json.dumps(chains),
        "PORTCULLIS_REGISTRY_KEY": chain.private_keys[1],
    }
    us_person, german = Account.create(), Account.create()
    for wallet, flags in ((us_person, "us_person,appropriateness_derivatives"), (german, "")):
        grant = ["registry", "grant", wallet.address, "--residence", "DE", "--class", "professional"]
        granted = portcullis(env, *grant, "--kyc-level", "2", "--valid-until", UNTIL, "--flags", flags)
        assert granted.returncode == 0, granted.stderr

    explained = portcullis(env, "policy", "explain", us_person.address, "--scope", "openid perps:trade")
    assert explained.returncode == 0, explained.stderr
    lines = explained.stdout.splitlines()
    assert lines[2].startswith("eligibility  REFUSED  not eligible on chain 31337 (block ")
    assert lines[2].endswith("): us_person")
    assert lines[-1].startswith("outcome  deny at eligibility, before the policy: 403 not_eligible: ")
    assert "issue" not in explained.stdout

    allowed = portcullis(env, "policy", "explain", german.address, "--scope", "openid")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.splitlines()[2].startswith("eligibility  PASS  chain 31337 block ")
    assert "outcome  issue" in allowed.stdout

    settings = make_settings(tmp_path, database_url=sqlite_url, chains=chains)
    async with running_app(settings, FakeClock()) as h:
        assert (await sign_in(h, german)).status_code == 200
        refused = await sign_in(h, us_person)
    assert refused.status_code == 403 and refused.json()["error"] == "not_eligible"
    description = refused.json()["error_description"]
    assert description.startswith("not eligible on chain 31337 (block ")
    assert description.endswith("): us_person")


async def sign_in(h: Harness, wallet: LocalAccount) -> httpx.Response:
    offer = (await h.client.post("/siwe/nonce")).json()
    message = siwe_text(offer, wallet.address, issued_at=h.clock.now())
    body = {"message": message, "signature": sign(wallet, message), "scope": "openid perps:trade"}
    return await h.client.post("/siwe/verify", json=body)


def test_on_the_development_chain(tmp_path: Path) -> None:
    """The issue's set-up: `make run` (a real ``portcullis serve`` with its embedded chain), a US person
    granted with the CLI; ``policy explain`` and ``/siwe/verify`` refuse it alike."""
    wallet = Account.create()
    with ServerProcess(tmp_path) as server:
        grant = ["registry", "grant", wallet.address, "--residence", "DE", "--class", "professional"]
        grant += ["--kyc-level", "2", "--valid-until", UNTIL, "--flags", "us_person"]
        granted = server.portcullis(*grant)
        assert granted.returncode == 0, granted.stderr
        explained = server.portcullis("policy", "explain", wallet.address, "--scope", "openid perps:trade")
        assert explained.returncode == 0, explained.stderr
        lines = explained.stdout.splitlines()
        assert lines[2].startswith("eligibility  REFUSED  not eligible on chain 31337 (block ")
        assert lines[2].endswith("): us_person") and "outcome  deny at eligibility" in lines[-1]

        offer = httpx.post(f"{server.url}/siwe/nonce").json()
        issued = datetime.now(UTC).replace(microsecond=0)
        message = siwe_text(offer, wallet.address, issued_at=issued)
        reply = httpx.post(
            f"{server.url}/siwe/verify",
            json={"message": message, "signature": sign(wallet, message), "scope": "openid perps:trade"},
        )
    assert reply.status_code == 403 and reply.json()["error"] == "not_eligible"
    assert reply.json()["error_description"].endswith("): us_person")
