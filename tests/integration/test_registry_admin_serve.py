"""Registry administration on the development chain of a real ``portcullis serve``, and the CLI's operator
entries appended to the log while that server appends its own (SQLite and PostgreSQL).

Real processes throughout: the server (development mode, embedded chain, every nonce audited), a thread
asking it for nonces the whole time, and ``portcullis registry ...`` subprocesses writing to the chain and
to the same audit log. After the server's clean shutdown (which signs a checkpoint), ``portcullis audit
verify`` must pass: no duplicated or skipped sequence number, no broken link."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app.chain.devchain import ADMIN, COMPLIANCE
from tests.anvil import DEV_PRIVATE_KEYS
from tests.integration.server import ServerProcess

UNTIL = (datetime.now(UTC) + timedelta(days=60)).date().isoformat()
PORTS = {"sqlite": 18231, "postgresql": 18232}  # this branch's port range (18200-18299)


def server_on(port: int, data_dir: Path, database_url: str) -> ServerProcess:
    server = ServerProcess(
        data_dir,
        PORTCULLIS_DATABASE_URL=database_url,
        PORTCULLIS_AUDIT_NONCE_SAMPLE_RATE="1.0",
        PORTCULLIS_RATE_LIMITS="false",
    )
    server.port, server.url = port, f"http://127.0.0.1:{port}"
    server.env["PORTCULLIS_PORT"] = str(port)
    return server


def grant(wallet: str) -> list[str]:
    record = ["--residence", "DE", "--class", "retail", "--kyc-level", "2", "--valid-until", UNTIL]
    return ["registry", "grant", wallet, *record]


def test_admin_commands_on_the_dev_chain_while_the_server_appends(database_url: str, tmp_path: Path) -> None:
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    server = server_on(PORTS[backend], tmp_path, database_url)
    stop = threading.Event()
    nonces: list[int] = []

    def ask_for_nonces() -> None:  # each one is a nonce.issued entry the server appends
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                nonces.append(client.post("/siwe/nonce").status_code)

    def cli(*argv: str, key: str | None = None, chains: Any = None) -> Any:
        env = dict(server.env)
        if key is not None:
            env["PORTCULLIS_REGISTRY_KEY"] = key
        if chains is not None:
            env["PORTCULLIS_CHAINS"] = json.dumps(chains)
        done = server_with_env(server, env, *argv)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    with server:
        asker = threading.Thread(target=ask_for_nonces)
        asker.start()
        try:
            officer = COMPLIANCE.address  # the dev chain's compliance key: ATTESTER, REVOKER, PAUSER
            wallets = ["0x" + f"{0xB0B0 + i:040x}" for i in range(3)]
            sent = [cli(*grant(wallets[0]), "--json")["tx"]]
            sent.append(cli("registry", "pause", "--json", "--operator", "oncall")["tx"])
            paused = server_with_env(server, server.env, *grant(wallets[1]))
            assert paused.returncode == 2
            assert paused.stderr.startswith("portcullis registry: the registry is paused")
            sent.append(cli("registry", "unpause", "--json", key=DEV_PRIVATE_KEYS[0])["tx"])

            deployed = cli("registry", "deploy", "--json")  # by the compliance key: it is the new admin
            sent.append(deployed["tx"])
            chains = json.loads(deployed["settings"]["PORTCULLIS_CHAINS"])
            assert chains == [
                {
                    "chain_id": 31337,
                    "rpc_urls": [f"{server.url}/dev/chain/rpc"],
                    "registry": deployed["registry"],
                }
            ]
            # A configured chain, no longer the dev chain: the signer is given, as in production.
            key = DEV_PRIVATE_KEYS[1]
            role = cli("registry", "roles", "grant", "ATTESTER", officer, "--json", key=key, chains=chains)
            sent.append(role["tx"])
            on_new = cli(*grant(wallets[2]), "--json", key=key, chains=chains)
            sent.append(on_new["tx"])
            shown = cli("registry", "show", wallets[2], "--json", chains=chains)
            assert shown["registry"] == deployed["registry"] and shown["verified"] is True
        finally:
            stop.set()
            asker.join()
    assert nonces.count(201) > 10 and set(nonces) == {201}

    verify = server_with_env(server, server.env, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("audit log OK: ")
    exported = server_with_env(server, server.env, "audit", "export")
    entries = [json.loads(line) for line in exported.stdout.splitlines()[1:]]
    operators = [e for e in entries if e.get("type") == "operator.registry_write"]
    assert [tx for e in operators for tx in e["data"]["transactions"]] == sent
    assert [e["data"]["command"] for e in operators] == [
        "registry grant",
        "registry pause",
        "registry unpause",
        "registry deploy",
        "registry roles grant",
        "registry grant",
    ]
    signers = [e["data"]["signer"] for e in operators]
    assert signers == [officer, officer, ADMIN.address, officer, officer, officer]
    assert operators[1]["actor"] == "operator:oncall"
    assert {e["data"]["chain_id"] for e in operators} == {31337}
    assert operators[-1]["data"]["registry"] == deployed["registry"]
    assert sum(e["type"] == "nonce.issued" for e in entries) == nonces.count(201)
    seqs = [e["seq"] for e in entries if "type" in e]
    assert seqs == list(range(1, len(seqs) + 1))


def server_with_env(server: ServerProcess, env: dict[str, str], *argv: str) -> Any:
    saved = server.env
    server.env = env
    try:
        return server.portcullis(*argv, timeout=120)
    finally:
        server.env = saved
