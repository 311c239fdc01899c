"""``make run`` as a developer starts it: a real ``portcullis serve`` and the sample perps API beside it. A
withdrawal by a TOTP-stepped-up token reaches introspection (as the development client ``perps-api``) and
is accepted, where before it failed closed with 503 (no introspection client). The client's secret is
random, made once in the data dir and never printed; production never registers it, so the same secret is
refused there."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from eth_account import Account

from app.bootstrap import PERPS_API_CLIENT_ID, PERPS_API_SECRET_FILE
from app.chain.devchain import DEV_ACCOUNTS
from tests.conftest import sign, siwe_text
from tests.integration.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
SERVER_PORT, API_PORT = 18910, 18911  # this suite's port range
MFA = "urn:portcullis:acr:wallet+mfa"
PROFESSIONAL = Account.from_key(DEV_ACCOUNTS[2].private_key)


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"make run exited with {proc.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in 90 s:\n{log.read_text()}")


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Path]:
    """``make run`` (the virtualenv taken as built: ``-o``), on this suite's ports and a fresh data dir."""
    if shutil.which("make") is None or not (ROOT / ".venv" / ".installed").exists():
        pytest.skip("needs make and the virtualenv `make` builds (.venv)")
    data, log = tmp_path / "var", tmp_path / "make-run.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PORTCULLIS_", "PERPS_API_"))}
    env = {
        **clean,
        "PORTCULLIS_PORT": str(SERVER_PORT),
        "PORTCULLIS_DATA_DIR": str(data),
        "PORTCULLIS_LOG_LEVEL": "warning",
        "PERPS_API_PORT": str(API_PORT),
        "PERPS_API_DATABASE": str(tmp_path / "perps_api.db"),
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["make", "-s", "-o", ".venv/.installed", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: make, its shell, the server and the API
        )
    try:
        wait_for(f"http://127.0.0.1:{SERVER_PORT}/ready", proc, log)
        wait_for(f"http://127.0.0.1:{API_PORT}/positions", proc, log)
        yield data
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    printed = log.read_text()
    assert "Traceback" not in printed, printed
    secret_file = data / PERPS_API_SECRET_FILE
    secret = secret_file.read_text().strip() if secret_file.exists() else "(none was made)"
    assert secret not in printed  # the banner names the file, never the secret
    assert re.search(rf"\n  dev client +{PERPS_API_CLIENT_ID} ", printed), printed


def sign_in(base: str, **extra: Any) -> dict[str, Any]:
    offer = httpx.post(f"{base}/siwe/nonce").json()
    message = siwe_text(offer, PROFESSIONAL.address, issued_at=datetime.now(UTC))
    reply = httpx.post(
        f"{base}/siwe/verify",
        json={"message": message, "signature": sign(PROFESSIONAL, message), **extra},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def test_a_stepped_up_withdrawal_is_introspected_under_make_run(make_run: Path) -> None:
    base, api = f"http://127.0.0.1:{SERVER_PORT}", f"http://127.0.0.1:{API_PORT}"
    destination = f"eip155:1:{PROFESSIONAL.address}"
    withdrawal = {"asset": "USDC", "amount": "500", "destination": destination}
    weak = sign_in(base, scope="openid portfolio:read")
    challenge = httpx.post(f"{api}/withdrawals", json=withdrawal, headers=bearer(weak))
    assert challenge.status_code == 401 and challenge.json()["error"] == "insufficient_user_authentication"

    enrolment = httpx.post(f"{base}/mfa/totp", headers=bearer(weak)).json()
    totp = pyotp.TOTP(enrolment["secret"])
    confirm = httpx.post(
        f"{base}/mfa/totp/confirm",
        json={"factor_id": enrolment["factor_id"], "code": totp.now()},
        headers=bearer(weak),
    )
    assert confirm.status_code == 200, confirm.text
    detail = {"type": "withdrawal", "asset": "USDC", "max_amount": "1000", "destinations": [destination]}
    strong = sign_in(
        base,
        scope="openid vault:withdraw",
        acr_values=MFA,
        # the next step's code: the current one was just used to confirm (one step of drift is allowed)
        second_factor={"type": "totp", "code": totp.at(datetime.now(UTC) + timedelta(seconds=30))},
        authorization_details=[detail],
    )
    accepted = httpx.post(f"{api}/withdrawals", json=withdrawal, headers=bearer(strong), timeout=30)
    assert accepted.status_code == 201, accepted.text  # was 503: no introspection client in development

    # The same client and secret, straight at the introspection endpoint: active.
    secret_file = make_run / PERPS_API_SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    answer = httpx.post(
        f"{base}/introspect",
        data={"token": strong["access_token"]},
        auth=(PERPS_API_CLIENT_ID, secret),
        timeout=30,
    )
    assert answer.status_code == 200 and answer.json()["active"] is True


def test_make_run_serves_the_demo_dapp_beside_the_api_it_calls(make_run: Path) -> None:
    """The demo dApp (frontend-demo/) at /demo/, told where the sample API is, which lets its origin call."""
    base, api = f"http://127.0.0.1:{SERVER_PORT}", f"http://127.0.0.1:{API_PORT}"
    assert "Portcullis demo dApp" in httpx.get(f"{base}/demo/", timeout=30).text
    config = httpx.get(f"{base}/demo/config.json", timeout=30).json()
    assert config["api_url"] == api and config["redirect_uri"] == f"{base}/demo/", config
    assert config["chain_rpc_url"] == f"{base}/dev/chain/rpc", config
    preflight = httpx.options(
        f"{api}/orders",
        headers={
            "Origin": base,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "dpop",
        },
        timeout=30,
    )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == base
    offer = httpx.post(f"{base}/siwe/nonce", json={"client_id": "frontend-demo"}, headers={"Origin": base})
    assert offer.status_code == 201 and offer.json()["domain"] == f"127.0.0.1:{SERVER_PORT}", offer.text


def test_production_never_accepts_the_development_client(tmp_path: Path) -> None:
    """A data dir holding the development client's secret, served in production: that client does not
    exist there (401 invalid_client), and the CLI refuses to make or print its secret."""
    data = tmp_path / "var"
    data.mkdir()
    secret = "a-development-secret-0123456789-abcdefghijklmnop"
    (data / PERPS_API_SECRET_FILE).write_text(secret)
    production = {
        "PORTCULLIS_MODE": "production",
        "PORTCULLIS_ISSUER": "https://auth.example.test",
        "PORTCULLIS_SECRET_KEY": "s" * 48,
        "PORTCULLIS_COMPLIANCE": "off",
    }
    with ServerProcess(data, port=SERVER_PORT, **production) as server:
        refused = httpx.post(
            f"{server.url}/introspect", data={"token": "x"}, auth=(PERPS_API_CLIENT_ID, secret), timeout=30
        )
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        printed = server.portcullis("dev", "perps-api-secret")
    assert printed.returncode != 0 and printed.stdout == ""
    assert "only in development mode" in printed.stderr and "Traceback" not in printed.stderr
