"""CORS in a real browser (docs/CLIENTS.md): a dApp page served on another origin (a second local HTTP
server) reads discovery and JWKS, gets a nonce, signs in with the injected test wallet and calls /userinfo
from headless Chromium, each through the browser's own preflights; ``credentials: "include"`` is blocked
(no Access-Control-Allow-Credentials); a page on an origin no client registered reads discovery but is
blocked at /siwe/nonce. A real ``portcullis serve`` process; the page's script is
tests/integration/rp/cross_origin.mjs."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.integration.server import ServerProcess, free_port
from tests.integration.test_openid_client_e2e import (
    CHAIN_ID,
    CHROMIUM,
    RP_DIR,
    WALLET_KEY,
    explain,
    needs_rp,
)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def static_site(root: Path) -> Iterator[str]:
    """An HTTP server for ``root`` on a free loopback port: another origin than Portcullis's."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text("<!doctype html><title>dApp</title><p>dApp</p>", encoding="utf-8")
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@needs_rp
def test_a_dapp_on_another_origin_uses_portcullis_from_chromium(tmp_path: Path) -> None:
    with static_site(tmp_path / "dapp") as dapp, static_site(tmp_path / "stranger") as stranger:
        domain = dapp.removeprefix("http://")
        clients = tmp_path / "clients.json"
        registration = {
            "client_id": "dapp",
            "redirect_uris": [f"{dapp}/cb"],
            "token_endpoint_auth_method": "none",
            "siwe_domains": [domain],
        }
        clients.write_text(json.dumps([registration]), encoding="utf-8")
        server = ServerProcess(
            tmp_path / "data",
            PORTCULLIS_CLIENTS_FILE=str(clients),
            PORTCULLIS_DEV_CHAIN="false",
            PORTCULLIS_CHAIN_IDS=json.dumps([CHAIN_ID]),
        )
        with server:
            request = {
                "issuer": server.url,
                "client_id": "dapp",
                "dapp_url": f"{dapp}/index.html",
                "stranger_url": f"{stranger}/index.html",
                "wallet_key": WALLET_KEY,
                "chain_id": CHAIN_ID,
                "chromium": str(CHROMIUM),
            }
            done = subprocess.run(
                ["node", "cross_origin.mjs"],
                cwd=RP_DIR,
                input=json.dumps(request),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
    lines = done.stdout.strip().splitlines()
    assert lines, f"cross_origin.mjs printed nothing (exit {done.returncode}): {done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert result["ok"], explain(result)
    page = result["dapp"]
    assert page["origin"] == dapp and page["origin"] != server.url
    assert page["discovery"]["status"] == 200 and page["discovery"]["body"]["issuer"] == server.url
    assert page["jwks"]["status"] == 200 and page["jwks"]["body"]["keys"], explain(result)
    assert page["nonce"]["status"] == 201 and page["nonce"]["body"]["domain"] == domain, explain(result)
    assert "blocked" in page["nonce_with_credentials"], explain(result)
    assert page["verify"] == {"status": 200, "has_access_token": True}, explain(result)
    assert page["userinfo"]["status"] == 200 and page["userinfo"]["body"]["sub"].startswith("did:pkh:")
    assert page["userinfo_bad_token"]["status"] == 401
    assert page["userinfo_bad_token"]["www_authenticate"].startswith("Bearer"), explain(result)
    assert result["wallet_calls"] == ["personal_sign"]
    other = result["stranger"]
    assert other["origin"] == stranger and other["discovery"]["status"] == 200
    assert "blocked" in other["nonce"], explain(result)
