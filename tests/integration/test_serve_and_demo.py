"""End to end: ``portcullis serve`` as a real process (development mode, its embedded chain), ``portcullis
demo`` signing in the seeded demo wallets against it, and waiting for a server that is not up yet."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.integration.server import ServerProcess

# This file's servers listen on 18401-18404 (the demo helper's port range), never on 8000.
TRADING_ASK = (
    "asked    scope openid perps:trade; derivatives_trade ETH-PERP: place_order, cancel_order; "
    "leverage up to 20x; notional up to 50000 USDC"
)


def _section(out: str, title: str) -> str:
    """The lines of the demo's ``== title`` section, up to the next one."""
    start = out.index(f"\n== {title}")
    end = out.find("\n== ", start + 1)
    return out[start : end if end != -1 else len(out)]


def test_demo_shows_what_the_policy_grants_each_demo_wallet(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, port=18401) as server:
        result = server.portcullis("demo", "--wait", "10", timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert "waiting for the server" not in out  # it was up: no message
        assert "Traceback" not in result.stderr

        # the professional (#2): every step of the sign-in, and everything it asked for
        professional = _section(out, "#2 professional investor, Germany")
        assert "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC" in professional
        for step in (
            "POST /siwe/nonce",
            "message to sign (EIP-4361)",
            "POST /siwe/verify -> tokens (shortened)",
            "ID token claims (signature checked against the JWKS)",
            "access token claims",
            "GET /userinfo",
            "POST /token (refresh_token, rotated)",
        ):
            assert f"\n== {step}" in out, step
        assert f'"iss": "{server.url}"' in out
        assert '"amr": [\n    "siwe"\n  ]' in out
        assert '"sub": "did:pkh:eip155:31337:0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"' in out
        assert '"investor_class": "professional"' in out  # the trading scope's access-token facts
        assert '"refresh_token rotated": true' in out
        assert TRADING_ASK in out
        assert (
            "GRANTED  as asked: scope openid perps:trade; derivatives_trade ETH-PERP: place_order, "
            "cancel_order; leverage up to 20x; notional up to 50000 USDC"
        ) in out

        # the seeded retail wallet (#3, no appropriateness test): trading refused, openid only
        retail = _section(out, "#3 retail investor, France")
        assert TRADING_ASK in retail
        assert "NARROWED scope openid; no derivatives_trade detail" in retail
        assert "why      perps:trade refused: missing required flag appropriateness_derivatives" in retail
        assert "MiFID II art. 25(3)" in retail

        # a retail wallet with the test (#5, written by the demo): leverage and notional narrowed
        appropriate = _section(out, "#5 retail investor, France, derivatives appropriateness")
        assert "grant 0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc: FR retail kyc 2" in appropriate
        assert (
            "NARROWED scope openid perps:trade; derivatives_trade ETH-PERP: place_order, cancel_order; "
            "leverage up to 2x; notional up to 10000 USDC"
        ) in appropriate
        assert "max_leverage 20 narrowed to 2: retail clients: leverage at most 2:1" in appropriate
        assert "max_notional 50000 narrowed to 10000 USDC" in appropriate

        # the US person (#4): refused by the chain's eligibility rule, the server's reason shown
        us_person = _section(out, "#4 US person")
        refusal = next(line for line in us_person.splitlines() if line.startswith("REFUSED"))
        assert refusal.startswith("REFUSED  403 not_eligible: not eligible on chain 31337 (block ")
        assert refusal.endswith("): us_person")
        assert out.rstrip().endswith("demo complete")

        # a second run against the same server tells the same story, and finds #5's record already on the
        # (persistent) development chain instead of writing it again
        assert "the demo writes one" in out
        again = server.portcullis("demo", "--wait", "10", timeout=180)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "written by an earlier demo run, is on the chain: nothing written" in again.stdout
        assert "the demo writes one" not in again.stdout
        assert "leverage up to 2x; notional up to 10000 USDC" in again.stdout

        # the CLI and the server share settings: the CLI sees the key the server created
        keys = server.portcullis("keys", "list")
        assert keys.returncode == 0
        served = httpx.get(f"{server.url}/jwks").json()["keys"][0]["kid"]
        assert served in keys.stdout


def test_demo_waits_for_a_server_started_after_it(tmp_path: Path) -> None:
    """``make run & portcullis demo`` on a first run: the demo starts first and waits."""
    server = ServerProcess(tmp_path, port=18402)
    demo = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "demo", "--wait", "90"],
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)
        assert demo.poll() is None, "the demo did not wait for the server"
        with server:
            out, err = demo.communicate(timeout=180)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, out + err
    assert out.count("waiting for the server") == 1
    assert out.startswith(f"waiting for the server at {server.url} (up to 90 s)...\n")
    assert "REFUSED  403 not_eligible" in out and out.rstrip().endswith("demo complete")


def test_demo_without_the_dev_chain(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, port=18403, PORTCULLIS_DEV_CHAIN="false") as server:
        result = server.portcullis("demo")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "did:pkh:eip155:1:0x" in result.stdout and "compliance" not in result.stdout
        assert "sign-in complete" in result.stdout


def test_demo_reports_an_unreachable_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, port=18404)  # never started
    started = time.monotonic()
    result = server.portcullis("demo", "--wait", "2")
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == f"waiting for the server at {server.url} (up to 2 s)...\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"portcullis: the server at {server.url} did not answer within 2 s (")
    assert lines[0].endswith("start it with `make run`, or give --url or a longer --wait SECONDS")
