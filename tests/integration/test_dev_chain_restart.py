"""``make run`` as a real ``portcullis serve`` process in development: a wallet granted with the CLI is still
on the development chain after a restart (``registry show``, and it signs in), the log follower does not
report the old grant again, ``portcullis dev reset`` starts clean; the start-up banner says what is served,
and the CLI's JSON-RPC calls stay out of the access log."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from app.bootstrap import DEV_SECRET_FILE
from app.chain.devchain_journal import journal_path
from tests.conftest import sign, siwe_text
from tests.integration.server import ServerProcess

UNTIL = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
RESTART_PORT, BANNER_PORT, CORRUPT_PORT = 18301, 18302, 18303


def grant(server: ServerProcess, wallet: LocalAccount) -> None:
    argv = ["registry", "grant", wallet.address, "--residence", "DE", "--class", "professional"]
    argv += ["--kyc-level", "2", "--valid-until", UNTIL, "--flags", "appropriateness_derivatives"]
    granted = server.portcullis(*argv)
    assert granted.returncode == 0, granted.stderr


def chain_changes(server: ServerProcess, wallet: LocalAccount) -> int:
    export = server.portcullis("audit", "export", "--subject", wallet.address)
    assert export.returncode == 0, export.stderr
    entries = [json.loads(line) for line in export.stdout.splitlines()][1:]
    return sum(1 for entry in entries if entry["type"] == "chain.change")


def sign_in(server: ServerProcess, wallet: LocalAccount) -> httpx.Response:
    offer = httpx.post(f"{server.url}/siwe/nonce").json()
    message = siwe_text(offer, wallet.address, issued_at=datetime.now(UTC).replace(microsecond=0))
    body = {"message": message, "signature": sign(wallet, message), "scope": "openid"}
    return httpx.post(f"{server.url}/siwe/verify", json=body)


def test_a_grant_survives_a_restart_and_dev_reset_starts_clean(tmp_path: Path) -> None:
    wallet = Account.create()
    with ServerProcess(tmp_path, port=RESTART_PORT) as server:
        grant(server, wallet)
        refused = server.portcullis("dev", "reset", "--yes")
        assert refused.returncode == 1 and "a running server holds the development chain" in refused.stderr
        deadline = time.monotonic() + 20
        while (seen := chain_changes(server, wallet)) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert seen == 1  # the follower recorded the grant once

    with ServerProcess(tmp_path, port=RESTART_PORT) as again:
        shown = again.portcullis("registry", "show", wallet.address)
        assert shown.returncode == 0, shown.stderr
        assert "residence     DE (276" in shown.stdout and "verified      yes" in shown.stdout
        reply = sign_in(again, wallet)
        assert reply.status_code == 200, reply.text
        # The follower starts at the head it finds (LogFollower start_block None): the restored grant's
        # event is history, not news. Three polls later there is still one chain.change entry.
        time.sleep(3)
        assert chain_changes(again, wallet) == 1

    reset = again.portcullis("dev", "reset", "--yes")
    assert reset.returncode == 0, reset.stderr
    assert not journal_path(tmp_path).exists()
    with ServerProcess(tmp_path, port=RESTART_PORT) as fresh:
        shown = fresh.portcullis("registry", "show", wallet.address)
        assert shown.returncode == 0, shown.stderr
        assert "record        none" in shown.stdout
        assert sign_in(fresh, wallet).status_code == 403


def test_the_banner_and_an_access_log_without_dev_chain_rpc(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    data = tmp_path / "data"
    with ServerProcess(data, port=BANNER_PORT, log_file=log, PORTCULLIS_LOG_LEVEL="info") as server:
        grant(server, Account.create())  # a dozen JSON-RPC calls, and one GET /dev/chain/info
        assert httpx.get(f"{server.url}/dev/chain/rpc").status_code == 405
    text = log.read_text()
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("portcullis "))
    banner = [line for line in lines[first + 1 :] if line.startswith("  ")]
    assert banner == lines[first + 1 : first + 1 + len(banner)]  # one block, before uvicorn's lines
    rows = {line.split()[0]: line.split()[1:] for line in banner}
    assert rows["issuer"] == [server.url]
    assert rows["mode"] == ["development"]
    assert rows["database"] == [f"sqlite+aiosqlite:///{data / 'portcullis.db'}"]
    assert f"dev chain rpc   {server.url}/dev/chain/rpc" in text
    assert "chain 31337     development chain, registry 0x5FbDB2315678afecb367f032d93F642f64180aa3" in text
    assert f"dev chain file  {journal_path(data)} (new chain;" in text
    secret = (data / DEV_SECRET_FILE).read_bytes()
    assert secret and secret.decode(errors="replace").strip() not in text and secret.hex() not in text
    # The access log: the RPC calls are gone, every other request is there.
    assert '"GET /ready HTTP/1.1" 200' in text
    assert '"GET /dev/chain/info HTTP/1.1" 200' in text
    assert '"GET /dev/chain/rpc HTTP/1.1" 405' in text
    assert '"POST /dev/chain/rpc' not in text


def test_an_unreadable_journal_stops_serve_with_one_line(tmp_path: Path) -> None:
    journal_path(tmp_path).write_text('{"format": "portcullis-devchain-journal/1"\n')
    server = ServerProcess(tmp_path, port=CORRUPT_PORT)
    result = server.portcullis("serve", timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"portcullis: the development chain journal {journal_path(tmp_path)}")
    assert "run `portcullis dev reset`" in lines[0]
