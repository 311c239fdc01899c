"""A server killed with SIGKILL in the middle of sign-ins leaves a gapless, verifiable audit log in which
every token a client received has its entry (both backends)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import jwt
from eth_account import Account

from tests.conftest import sign, siwe_text
from tests.integration.server import ServerProcess


def _hammer(url: str, stop: threading.Event, jtis: list[str], errors: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=5) as client:
        while not stop.is_set():
            wallet = Account.create()
            try:
                offer = client.post("/siwe/nonce").json()
                from datetime import UTC, datetime

                message = siwe_text(offer, wallet.address, issued_at=datetime.now(UTC))
                reply = client.post(
                    "/siwe/verify", json={"message": message, "signature": sign(wallet, message)}
                )
            except httpx.TransportError:
                return  # the server is gone
            if reply.status_code == 200:
                claims = jwt.decode(reply.json()["access_token"], options={"verify_signature": False})
                jtis.append(claims["jti"])
            else:
                errors.append(reply.text)


def test_sigkill_mid_sign_ins_leaves_a_verifiable_log(database_url: str, tmp_path: Path) -> None:
    env = {
        "PORTCULLIS_DATABASE_URL": database_url,
        "PORTCULLIS_AUDIT_CHECKPOINT_EVERY": "10",
        "PORTCULLIS_DEV_CHAIN": "false",  # plain EOA sign-ins: this test is about the audit log
        "PORTCULLIS_RATE_LIMITS": "false",  # four clients on one IP, far above a person's rate
    }
    jtis: list[str] = []
    errors: list[str] = []
    stop = threading.Event()
    with ServerProcess(tmp_path, **env) as server:
        workers = [threading.Thread(target=_hammer, args=(server.url, stop, jtis, errors)) for _ in range(4)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 20
        while len(jtis) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.proc is not None
        server.proc.kill()  # SIGKILL: no shutdown hook, no final checkpoint
        server.proc.wait()
        stop.set()
        for w in workers:
            w.join(timeout=10)
    assert len(jtis) >= 30 and not errors, errors[:3]

    checker = ServerProcess(tmp_path, **env)
    result = checker.portcullis("audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit log OK" in result.stdout
    export = checker.portcullis("audit", "export")
    entries = [json.loads(line) for line in export.stdout.splitlines()][1:]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    logged = {e["data"]["jti"] for e in entries if e["type"] == "signin.succeeded"}
    assert set(jtis) <= logged  # no token without its audit entry

    # a restarted server continues the same chain
    with ServerProcess(tmp_path, **env) as again:
        assert httpx.post(f"{again.url}/siwe/nonce").status_code == 201
    final = checker.portcullis("audit", "verify")
    assert final.returncode == 0, final.stdout + final.stderr
