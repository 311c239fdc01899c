"""A real ``portcullis serve``: production's JSON log lines (every line one object, with request context, no
token, signature, secret or full client IP), and /metrics summed over processes sharing a metrics dir
(prometheus-client's multiprocess mode, as the workers of one server use it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import sign, siwe_text
from tests.integration.server import ServerProcess

CLIENT_IP = "198.51.100.77"  # sent through the (trusted) loopback proxy as X-Forwarded-For
CLIENT_SECRET = "a-client-secret-that-must-never-be-logged-0123456789"


def sign_in(url: str, wallet: Any, signer: Any = None) -> httpx.Response:
    headers = {"X-Forwarded-For": CLIENT_IP}
    offer = httpx.post(f"{url}/siwe/nonce", headers=headers).json()
    message = siwe_text(offer, wallet.address, issued_at=datetime.now(UTC))
    body = {"message": message, "signature": sign(signer or wallet, message)}
    return httpx.post(f"{url}/siwe/verify", json=body, headers=headers)


def test_production_logs_are_one_json_object_per_line_without_secrets(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    env = {
        "PORTCULLIS_MODE": "production",
        "PORTCULLIS_ISSUER": "https://auth.example.test",
        "PORTCULLIS_SECRET_KEY": "s" * 48,
        "PORTCULLIS_COMPLIANCE": "off",
        "PORTCULLIS_LOG_LEVEL": "info",
        "PORTCULLIS_TRUSTED_PROXIES": '["127.0.0.1/32"]',
    }
    wallet = Account.create()
    with ServerProcess(tmp_path / "data", log_file=log, **env) as server:
        headers = {"X-Forwarded-For": CLIENT_IP, "X-Request-Id": "req-signin-1"}
        offer = httpx.post(f"{server.url}/siwe/nonce", headers=headers).json()
        message = siwe_text(offer, wallet.address, issued_at=datetime.now(UTC))
        signature = sign(wallet, message)
        reply = httpx.post(
            f"{server.url}/siwe/verify", json={"message": message, "signature": signature}, headers=headers
        )
        assert reply.status_code == 200, reply.text
        tokens = reply.json()
        refreshed = httpx.post(
            f"{server.url}/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers={"X-Forwarded-For": CLIENT_IP},
        )
        assert refreshed.status_code == 200, refreshed.text
        # failing requests: a forged signature, an unknown client with a secret, an ID token in a query
        forged = sign_in(server.url, wallet, signer=Account.create())
        assert forged.status_code == 401
        bad_client = httpx.post(
            f"{server.url}/token",
            data={"grant_type": "client_credentials", "client_id": "nobody", "client_secret": CLIENT_SECRET},
            headers={"X-Forwarded-For": CLIENT_IP},
        )
        assert bad_client.status_code == 401
        httpx.get(f"{server.url}/logout", params={"id_token_hint": tokens["id_token"]})
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line parses, or this fails
    assert lines and all({"time", "level", "logger", "event"} <= line.keys() for line in lines)
    assert any(line["event"] == "startup" and line["banner"]["mode"] == "production" for line in lines)
    access = [line for line in lines if line["event"] == "http.request"]
    verify = next(line for line in access if line["route"] == "/siwe/verify" and line["status"] == 200)
    assert verify["request_id"] == "req-signin-1" and verify["method"] == "POST"
    assert verify["client_id"] == "portcullis-demo"
    assert verify["subject"] == f"did:pkh:eip155:1:{wallet.address}"
    assert verify["client_ip"] == "198.51.100.0/24"  # PORTCULLIS_AUDIT_IP=truncated, the default
    assert all(line["request_id"] for line in access)
    assert any(line["route"] == "/token" and line["status"] == 401 for line in access)
    logout = next(line for line in access if line["route"] == "/logout")
    assert logout["path"] == "/logout"  # never the query string
    for secret in (
        tokens["access_token"],
        tokens["refresh_token"],
        tokens["id_token"],
        refreshed.json()["access_token"],
        refreshed.json()["refresh_token"],
        signature,
        signature.removeprefix("0x"),
        CLIENT_SECRET,
        CLIENT_IP,
        offer["nonce"],
    ):
        assert secret not in text


def _signins(url: str) -> float:
    reply = httpx.get(f"{url}/metrics")
    assert reply.status_code == 200
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            if sample.name == "portcullis_signins_total" and sample.labels.get("outcome") == "success":
                return sample.value
    return 0.0


def test_processes_sharing_a_metrics_dir_report_their_sum(tmp_path: Path) -> None:
    shared = {"PORTCULLIS_METRICS_DIR": str(tmp_path / "metrics"), "PORTCULLIS_DEV_CHAIN": "false"}
    with (
        ServerProcess(tmp_path / "a", **shared) as a,
        ServerProcess(tmp_path / "b", **shared) as b,
    ):
        assert sign_in(a.url, Account.create()).status_code == 200
        for _ in range(2):
            assert sign_in(b.url, Account.create()).status_code == 200
        assert _signins(a.url) == 3 == _signins(b.url)  # either process answers for both
    assert any((tmp_path / "metrics").glob("counter_*.db"))
