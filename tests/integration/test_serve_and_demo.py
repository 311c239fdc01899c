"""End to end: ``portcullis serve`` as a real process, ``portcullis demo`` signing in against it."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.server import ServerProcess


def test_demo_signs_in_against_a_running_server(tmp_path: Path) -> None:
    with ServerProcess(tmp_path) as server:
        result = server.portcullis("demo")
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        for step in (
            "POST /siwe/nonce",
            "message to sign (EIP-4361)",
            "POST /siwe/verify -> tokens (shortened)",
            "ID token claims (signature checked against the JWKS)",
            "GET /userinfo",
            "POST /token (refresh_token, rotated)",
            "sign-in complete",
        ):
            assert step in out, step
        assert f'"iss": "{server.url}"' in out
        assert '"amr": [\n    "siwe"\n  ]' in out
        # make run's embedded chain: the demo puts its wallet on the registry first, the tokens say so
        assert "development chain: the registry must list the wallet" in out
        assert "did:pkh:eip155:31337:0x" in out
        assert '"residence": "DE"' in out and '"investor_class": "professional"' in out
        # the CLI and the server share settings: the CLI sees the key the server created
        keys = server.portcullis("keys", "list")
        assert keys.returncode == 0
        served = httpx.get(f"{server.url}/jwks").json()["keys"][0]["kid"]
        assert served in keys.stdout


def test_demo_without_the_dev_chain(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, PORTCULLIS_DEV_CHAIN="false") as server:
        result = server.portcullis("demo")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "did:pkh:eip155:1:0x" in result.stdout and "compliance" not in result.stdout


def test_demo_reports_an_unreachable_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    result = server.portcullis("demo")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "cannot reach" in result.stderr
