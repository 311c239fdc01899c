"""The hosted delegation page in a real browser (headless Chromium, the injected EIP-1193 test wallet) on a
real ``portcullis serve`` with its development chain: the professional wallet signs in, pastes its bot's
public JWK, reads the delegation in plain words, signs it and sees it listed; the bot then gets a token
with its own key; the wallet revokes it on the page and the bot is refused. The page runs under the
hosted pages' CSP (no inline handler, no third-party asset): any violation shows in the console."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from app.chain.devchain import DEV_ACCOUNTS
from tests.integration.server import ServerProcess
from tests.integration.test_openid_client_e2e import CHAIN_ID, CHROMIUM, RP_DIR, explain, needs_rp
from tests.oauth.bots import JWT_BEARER, Bot

SERVER_PORT = 19102  # this branch's port range (19100-19199)
PROFESSIONAL_KEY = DEV_ACCOUNTS[2].private_key


def page(server: ServerProcess, **request: Any) -> dict[str, Any]:
    body = {
        "issuer": server.url,
        "wallet_key": PROFESSIONAL_KEY,
        "chain_id": CHAIN_ID,
        "chromium": str(CHROMIUM),
    }
    done = subprocess.run(
        ["node", "delegations.mjs"],
        cwd=RP_DIR,
        input=json.dumps({**body, **request}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"delegations.mjs printed nothing (exit {done.returncode}): {done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert result["ok"], explain(result)
    assert not [c for c in result["console"] if "Content Security Policy" in c], explain(result)
    return result


def bot_token(http: httpx.Client, url: str, bot: Bot, delegation_id: str) -> httpx.Response:
    from tests.conftest import FakeClock

    now = FakeClock().now()
    form = {"grant_type": JWT_BEARER, "assertion": bot.assertion(url, delegation_id, now)}
    return http.post("/token", data=form, headers={"DPoP": bot.proof("POST", f"{url}/token", now)})


@needs_rp
def test_create_list_and_revoke_on_the_page(tmp_path: Path) -> None:
    bot = Bot()
    with ServerProcess(tmp_path, port=SERVER_PORT, PORTCULLIS_RATE_LIMITS="false") as server:
        created = page(server, action="create", bot_jwk=bot.jwk)
        review = " ".join(created["review"])
        assert bot.jkt in review and "ETH-PERP" in review and "5x leverage" in review
        assert "50000 USDC" in review and "never withdraw" in review
        [listed] = created["listed"]
        assert listed["state"] == "active" and bot.jkt in listed["text"] and "perps:trade" in listed["text"]
        assert not created["error_shown"] and created["status"].startswith("Delegation created")
        assert set(created["wallet_calls"]) == {"eth_requestAccounts", "eth_chainId", "personal_sign"}
        signed = created["signed"][-1]
        assert (
            f"URI: urn:ietf:params:oauth:jwk-thumbprint:sha-256:{bot.jkt}" in signed
            and "- urn:recap:" in signed
        )

        with httpx.Client(base_url=server.url, timeout=30) as http:
            granted = bot_token(http, server.url, bot, listed["id"])
            assert granted.status_code == 200, granted.text
            assert granted.json()["scope"] == "perps:trade portfolio:read"

            revoked = page(server, action="revoke")
            assert [d["state"] for d in revoked["listed"]] == ["revoked"]
            refused = bot_token(http, server.url, bot, listed["id"])
            assert refused.status_code == 400 and "revoked" in refused.json()["error_description"]
