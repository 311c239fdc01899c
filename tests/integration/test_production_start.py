"""Production start-up and the compliance gate: a real ``portcullis serve`` refuses to start without a chain
that has a required compliance source, unless the operator says PORTCULLIS_COMPLIANCE=off, which then shows
in the log, in /ready and in every token."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import pytest
from eth_account import Account

from tests.conftest import sign, siwe_text
from tests.integration.server import ServerProcess

ISSUER = "https://auth.example.test"


def production(tmp_path: Path, **env: str) -> dict[str, str]:
    return {
        "PORTCULLIS_MODE": "production",
        "PORTCULLIS_ISSUER": ISSUER,
        "PORTCULLIS_SECRET_KEY": "s" * 48,
        **env,
    }


def test_production_without_a_chain_refuses_to_start(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, **production(tmp_path))
    started = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "serve"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "Traceback" not in started.stderr
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert (
        "PORTCULLIS_CHAINS: production needs at least one chain with a required compliance source" in lines[0]
    )
    assert "PORTCULLIS_COMPLIANCE=off" in lines[0]
    with pytest.raises(httpx.TransportError):  # nothing listens
        httpx.get(f"{server.url}/ready", timeout=1)


def test_compliance_off_is_said_at_start_in_ready_and_in_every_token(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    env = production(tmp_path, PORTCULLIS_COMPLIANCE="off", PORTCULLIS_LOG_LEVEL="info")
    with ServerProcess(tmp_path / "data", log_file=log, **env) as server:
        ready = httpx.get(f"{server.url}/ready")
        assert ready.status_code == 200 and ready.json()["compliance"] == "off"
        wallet = Account.create()
        offer = httpx.post(f"{server.url}/siwe/nonce").json()
        assert offer["domain"] == "auth.example.test"
        message = siwe_text(offer, wallet.address, issued_at=datetime.now(UTC))
        reply = httpx.post(
            f"{server.url}/siwe/verify", json={"message": message, "signature": sign(wallet, message)}
        )
        assert reply.status_code == 200, reply.text
        tokens = reply.json()
        for name in ("access_token", "id_token"):
            claims = jwt.decode(tokens[name], options={"verify_signature": False})
            assert claims["compliance"] == {"source": "none"}, name
        refreshed = httpx.post(
            f"{server.url}/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        assert refreshed.status_code == 200, refreshed.text
        rotated = jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})
        assert rotated["compliance"] == {"source": "none"}
    warning = [line for line in log.read_text().splitlines() if "PORTCULLIS_COMPLIANCE=off" in line]
    assert warning and "no on-chain compliance gate" in warning[0]


def test_compliance_required_shows_in_ready(tmp_path: Path) -> None:
    with ServerProcess(tmp_path) as server:  # development: the embedded chain's registry is the gate
        ready = httpx.get(f"{server.url}/ready").json()
        assert ready["status"] == "ready" and ready["compliance"] == "required"
