"""The demo dApp (frontend-demo/, served at <issuer>/demo/ in development) in real Chromium, driven like a
user with injected EIP-6963 / EIP-1193 test wallets (real secp256k1 keys in Node, tests/integration/rp/
demo_wallet.mjs), against a real ``portcullis serve`` with its development chain and the sample perps API
(introspecting as the development client ``perps-api``).

Each journey: two wallets listed by name and icon; a wallet on the wrong chain is offered the switch; the
sign-in (in the dApp with SIWE, a rejected signature first; or through the hosted page with oauth4webapi:
PAR, PKCE, DPoP); the session in words; positions; an order within the granted caps accepted and one over
them refused with the reason; a silent refresh; a withdrawal that needs a step-up, done on the hosted page
with a TOTP code or with a passkey on Chromium's virtual authenticator, then retried and accepted; the
RP-initiated sign-out, after which the token is inactive. A wallet not on the registry is told so.
Screenshots of every screen land in the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.bootstrap import DEMO_CLIENT_ID, PERPS_API_CLIENT_ID
from app.chain.devchain import DEV_ACCOUNTS
from tests.integration.server import ServerProcess, free_port
from tests.integration.test_openid_client_e2e import CHROMIUM, MFA_ACR, RP_DIR, needs_rp
from tests.integration.test_signin_page_browser import enrol_totp, wallet_access_token

ROOT = Path(__file__).resolve().parents[2]
PROFESSIONAL = DEV_ACCOUNTS[2]  # seeded: professional investor, Germany (app/chain/devchain.py)
UNREGISTERED = DEV_ACCOUNTS[5]  # funded, no registry record
CHAIN_ID = 31337


class Venue:
    """A development server (embedded chain, the demo at /demo/) and the sample perps API beside it."""

    def __init__(self, server: ServerProcess, api_url: str, secret: str) -> None:
        self.server, self.api_url, self.secret = server, api_url, secret

    def introspect(self, token: str) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.server.url}/introspect",
            data={"token": token},
            auth=(PERPS_API_CLIENT_ID, self.secret),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@contextmanager
def venue(data_dir: Path, *, public_host: str = "127.0.0.1") -> Iterator[Venue]:
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    server = ServerProcess(data_dir, public_host=public_host, PORTCULLIS_DEMO_API_URL=api_url)
    made = server.portcullis("dev", "perps-api-secret")  # before the start: the server reads it then
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    with server:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PORTCULLIS_", "PERPS_API_"))}
        env = {
            **clean,
            "PYTHONPATH": str(ROOT / "sdk" / "examples"),
            "PERPS_API_PORT": str(api_port),
            "PERPS_API_ISSUER": server.url,
            "PERPS_API_DATABASE": str(data_dir / "perps_api.db"),
            "PERPS_API_CLIENT_ID": PERPS_API_CLIENT_ID,
            "PERPS_API_CLIENT_SECRET": secret,
        }
        api = subprocess.Popen([sys.executable, "-m", "perps_api"], env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert api.poll() is None, f"the perps API exited with {api.returncode}"
                try:
                    httpx.get(f"{api_url}/positions", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the perps API did not answer in 30 s"
                    time.sleep(0.1)
            yield Venue(server, api_url, secret)
        finally:
            api.terminate()
            api.wait(timeout=10)


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    with venue(tmp_path_factory.mktemp("demo")) as running:
        yield running


@pytest.fixture(scope="module")
def localhost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    """Issuer http://localhost:<port>: a WebAuthn rp id must be a domain (tests/integration/server.py)."""
    with venue(tmp_path_factory.mktemp("demo-passkey"), public_host="localhost") as running:
        yield running


def run_demo(v: Venue, scenario: str, out_dir: Path, **fields: Any) -> dict[str, Any]:
    request = {
        "scenario": scenario,
        "issuer": v.server.url,
        "demo_url": f"{v.server.url}/demo/",
        "chromium": str(CHROMIUM),
        "out_dir": str(out_dir),
        "timeout_ms": 30000,
        **fields,
    }
    done = subprocess.run(
        ["node", "demo.mjs"],
        cwd=RP_DIR,
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"demo.mjs printed nothing (exit {done.returncode}): {done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def explain(result: dict[str, Any]) -> str:
    """The failure first (what broke, on which page), then the facts gathered so far."""
    first = {k: result.get(k) for k in ("error", "error_page", "console")}
    rest = {k: v for k, v in result.items() if k not in first}
    return (json.dumps(first, indent=1) + "\n" + json.dumps(rest, indent=1))[:8000]


def check_wallets_and_chain(result: dict[str, Any], *, wallet_knew_the_chain: bool = False) -> None:
    names = [w["name"] for w in result["wallets"]]
    assert names == ["Test Wallet A", "Test Wallet B"], result["wallets"]
    assert all(w["icon"].startswith("data:image/svg+xml") for w in result["wallets"]), result["wallets"]
    assert f"this venue signs in on chain {CHAIN_ID}" in result["wrong_chain_text"], result[
        "wrong_chain_text"
    ]
    assert result["siwe_button_disabled_on_wrong_chain"] is True
    assert "wallet_switchEthereumChain" in result["wallet_calls"], result["wallet_calls"]
    if wallet_knew_the_chain:
        assert result["wallet_added_chains"] == [], result["wallet_added_chains"]
    else:
        # the wallet did not know the chain (4902): the dApp offered to add it with the dev chain's RPC URL
        (added,) = result["wallet_added_chains"]
        assert added["chainId"] == hex(CHAIN_ID) and added["rpcUrls"][0].endswith("/dev/chain/rpc"), added
    assert f"chain {CHAIN_ID}" in result["connected_text"], result["connected_text"]


def check_trading(result: dict[str, Any]) -> None:
    assert "You have no open positions." in result["positions"], result["positions"]
    assert result["order_ok"].startswith("Order accepted: buy ETH-PERP 5x, 1000 USD"), result["order_ok"]
    over = result["order_over"]
    assert over.startswith("Order refused (HTTP 403): it is outside what you granted."), over
    assert "leverage" in over, over


def check_refresh(result: dict[str, Any]) -> None:
    assert result["refresh"]["changed"] and "renewed" in result["refresh"]["status"], result["refresh"]
    assert result["refresh"]["dpop"], result["refresh"]  # refreshed at /token with this tab's DPoP key
    # the page's own timer renewed a token 31 s from its end, after a reload, without a click
    silent = result["silent_refresh"]
    assert silent["changed"] and silent["expires_in"] > 300, silent


def check_step_up_and_sign_out(v: Venue, result: dict[str, Any], amr: set[str]) -> None:
    assert "This withdrawal needs a second factor." in result["withdraw_challenge"], result[
        "withdraw_challenge"
    ]
    assert result["withdraw_after_step_up"].startswith("Withdrawal accepted: 500 USDC to eip155:1:"), result
    claims = result["step_up_claims"]
    assert claims["acr"] == MFA_ACR and amr <= set(claims["amr"]), claims
    assert "signed out" in result["signed_out_text"], result["signed_out_text"]
    assert result["session_after_sign_out"] is None and result["session_visible_after_sign_out"] is False
    # RP-initiated logout ended the session on the server: the last token introspects inactive
    assert v.introspect(result["last_access_token"])["active"] is False
    assert not [line for line in result["console"] if "Content Security Policy" in line], result["console"]


@needs_rp
def test_sign_in_here_trade_and_step_up_with_a_code(loopback: Venue, tmp_path: Path) -> None:
    totp = enrol_totp(loopback.server, PROFESSIONAL.private_key)
    result = run_demo(
        loopback,
        "journey",
        tmp_path,
        path="siwe",
        wallet_key=PROFESSIONAL.private_key,
        wallet_chain_id=1,
        reject_first_signature=True,
        step_up="totp",
        totp_secret=totp.secret,
    )
    assert result["ok"], explain(result)
    check_wallets_and_chain(result)
    # the rejected signature (EIP-1193 4001) is said in words, and nothing was sent to /siwe/verify
    assert "You rejected the request in your wallet" in result["rejected_text"], result["rejected_text"]
    assert not [r for r in result["requests_after_rejection"] if "/siwe/verify" in r], result
    session = result["session"]
    assert (
        session["path"] == "siwe"
        and session["claims"]["sub"] == f"did:pkh:eip155:{CHAIN_ID}:{PROFESSIONAL.address}"
    )
    text = result["session_text"]
    assert PROFESSIONAL.address in text and "in this dApp (Sign-In with Ethereum" in text, text
    assert "Trade perpetual futures" in text and "See your positions and orders" in text, text
    # the policy narrowed the request (50x, 2,000,000 USD) to the professional caps; said in words
    assert "May place orders and cancel orders on ETH-PERP and BTC-PERP" in text, text
    assert "at up to 20x leverage" in text and "up to 1,000,000 USD in total" in text, text
    assert "Investor class: professional client" in text and "These facts hold until " in text, text
    assert "Country of residence: DE" in text, text
    assert "your wallet's signature (acr urn:portcullis:acr:wallet; amr: wallet signature)" in text, text
    check_trading(result)
    check_refresh(result)
    check_step_up_and_sign_out(loopback, result, {"siwe", "otp", "mfa"})
    assert len(list(tmp_path.glob("*.png"))) == len(result["screens"]) >= 12, result["screens"]


@needs_rp
def test_sign_in_with_portcullis_and_step_up_with_a_passkey(localhost: Venue, tmp_path: Path) -> None:
    result = run_demo(
        localhost,
        "journey",
        tmp_path,
        path="oidc",
        wallet_key=PROFESSIONAL.private_key,
        wallet_chain_id=1,
        known_chains=[1, CHAIN_ID],  # this wallet switches at once, without adding the chain
        step_up="passkey",
        passkey_bearer=wallet_access_token(localhost.server, PROFESSIONAL.private_key),
        virtual_authenticator=True,
    )
    assert result["ok"], explain(result)
    assert result["passkey"] == {"finish_status": 201, "credentials": 1}, result["passkey"]
    check_wallets_and_chain(result, wallet_knew_the_chain=True)
    session = result["session"]
    # oauth4webapi's code flow: a pushed request, then DPoP-bound tokens for this public client
    assert session["path"] == "oidc" and session["dpop"] is True, session
    pushed = [r for r in result["requests"] if r.startswith("POST ") and r.endswith("/par")]
    assert len(pushed) == 2, result["requests"]  # the sign-in and the step-up
    assert session["claims"]["aud"] == DEMO_CLIENT_ID, session["claims"]
    assert "Allow" in result["steps"]["signin_consent"], result["steps"]
    text = result["session_text"]
    assert "through Portcullis' page (authorization code, PAR, PKCE, DPoP-bound tokens)" in text, text
    assert "DPoP-bound to this tab's key" in text and "at up to 20x leverage" in text, text
    check_trading(result)
    check_refresh(result)
    check_step_up_and_sign_out(localhost, result, {"siwe", "hwk", "mfa"})


@needs_rp
def test_a_wallet_not_on_the_registry_is_told_why(loopback: Venue, tmp_path: Path) -> None:
    result = run_demo(
        loopback, "unregistered", tmp_path, wallet_key=UNREGISTERED.private_key, wallet_chain_id=CHAIN_ID
    )
    assert result["ok"], explain(result)
    assert "This wallet is not on the venue's list of verified accounts" in result["error_text"], result
    assert "not_eligible" not in result["error_text"].split("(")[0]
    assert result["session_visible"] is False
    assert [p.name for p in tmp_path.glob("*.png")] == ["01-wallets.png", "02-wallet-not-on-registry.png"]
