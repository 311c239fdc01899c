"""An on-chain revocation seen by one replica's follower stops the wallet at every replica (issue 15).

Two ``portcullis serve`` replicas on one PostgreSQL database and a real anvil with the ComplianceRegistry.
Replica A follows the chain every second; replica B polls only once a minute, so within the bound below
only A's follower can have seen the revocation. A ends the wallet's sessions in the shared database and
notifies (app.storage.changes): B then refuses the wallet's refresh and introspection of its access token,
and a new sign-in, within POLL + BOUND of the revoking transaction.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from eth_account import Account

from tests.anvil import Anvil
from tests.conftest import sign, siwe_text
from tests.flow.client import secret_client, write_clients
from tests.integration.replicas import database_rows, postgres_database_sync, replica_env, replicas

POLL = 1.0  # A's follower
SLOW_POLL = 60.0  # B's follower: it cannot be what stops the wallet at B
BOUND = 1.0  # seconds after A's poll interval within which B refuses (the issue's "within 1 s")
SLACK = 1.0  # a loaded CI machine
ISSUER = "http://127.0.0.1:18359"
RS_SECRET = "resource-server-secret-for-the-revocation-test-0123"


def sign_in(url: str, wallet: object) -> httpx.Response:
    offer = httpx.post(f"{url}/siwe/nonce").json()
    message = siwe_text(offer, wallet.address, issued_at=datetime.now(UTC))  # type: ignore[attr-defined]
    body = {"message": message, "signature": sign(wallet, message), "scope": "openid compliance"}
    return httpx.post(f"{url}/siwe/verify", json=body, timeout=10)


def test_a_revocation_one_follower_sees_stops_the_wallet_at_every_replica(
    chain: Anvil, registry: str, tmp_path: Path
) -> None:
    clients = write_clients(
        tmp_path / "clients.json",
        [
            {
                **secret_client("rs", RS_SECRET, [], method="client_secret_post"),
                "grant_types": ["client_credentials"],
                "response_types": [],
            }
        ],
    )
    base = {"chain_id": 31337, "rpc_urls": [chain.url], "registry": registry}
    wallet = Account.create()
    with postgres_database_sync() as url:
        common = {
            "PORTCULLIS_CLIENTS_FILE": str(clients),
            "PORTCULLIS_RATE_LIMITS": "false",
            "PORTCULLIS_REGISTRY_KEY": chain.private_keys[1],
            "PORTCULLIS_RISK_STEP_UP_AT": "1000",  # repeated refusals of one wallet are the point here
            "PORTCULLIS_RISK_DENY_AT": "1000",
        }
        env_a = replica_env(
            url,
            ISSUER,
            **common,
            PORTCULLIS_NODE_ID="a",
            PORTCULLIS_CHAINS=json.dumps([{**base, "poll_seconds": POLL}]),
        )
        env_b = replica_env(
            url,
            ISSUER,
            **common,
            PORTCULLIS_NODE_ID="b",
            PORTCULLIS_CHAINS=json.dumps([{**base, "poll_seconds": SLOW_POLL}]),
        )
        for env in (env_a, env_b):
            env.pop("PORTCULLIS_COMPLIANCE")  # required: the registry gates sign-in
        with (
            replicas(tmp_path / "a", [18350], env_a) as (a,),
            replicas(tmp_path / "b", [18351], env_b) as (b,),
        ):
            until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
            granted = a.portcullis(
                "registry", "grant", wallet.address, "--residence", "DE", "--class", "professional",
                "--kyc-level", "2", "--valid-until", until,
            )  # fmt: skip
            assert granted.returncode == 0, granted.stderr
            reply = sign_in(b.url, wallet)
            assert reply.status_code == 200, reply.text  # B read the grant (no decision cached before it)
            tokens = reply.json()
            assert sign_in(a.url, wallet).status_code == 200  # A caches the eligible decision too

            revoked = a.portcullis("registry", "revoke", wallet.address, "--reason", "kyc-withdrawn")
            assert revoked.returncode == 0, revoked.stderr
            start = time.monotonic()
            refused: dict[str, float] = {}
            creds = {"client_id": "rs", "client_secret": RS_SECRET}
            while len(refused) < 3 and time.monotonic() - start < SLOW_POLL / 2:
                now = time.monotonic() - start
                if "refresh" not in refused:
                    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
                    r = httpx.post(f"{b.url}/token", data=form)
                    if r.status_code == 200:
                        tokens = r.json()
                    else:
                        refused["refresh"] = now
                if "introspection" not in refused:
                    i = httpx.post(f"{b.url}/introspect", data={"token": tokens["access_token"], **creds})
                    if i.status_code == 200 and i.json()["active"] is False:
                        refused["introspection"] = now
                if "sign-in" not in refused and sign_in(b.url, wallet).status_code == 403:
                    refused["sign-in"] = now
                time.sleep(0.05)
            revokers = database_rows(url, "SELECT node FROM audit_log WHERE type = 'token.subject_revoked'")
    assert revokers == [("a",)], revokers  # A's follower saw the revocation and ended the sessions
    print(f"replica B refused after (s from the revoke command's return): {refused}")
    assert set(refused) == {"refresh", "introspection", "sign-in"}, refused
    assert max(refused.values()) <= POLL + BOUND + SLACK, refused
