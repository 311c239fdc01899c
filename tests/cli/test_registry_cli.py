"""`portcullis registry` against a real ComplianceRegistry on anvil, run in-process through the parser that
`registry.add_parser` builds and `registry.run` (what `portcullis registry ...` will call)."""

from __future__ import annotations

import argparse
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3 import Web3
from web3.contract import Contract

from app.cli import registry
from app.settings import Settings, load_settings
from tests.anvil import CHAIN_ID, Anvil, deploy, send

ATTESTER_ROLE = Web3.keccak(text="ATTESTER_ROLE")
REVOKER_ROLE = Web3.keccak(text="REVOKER_ROLE")
PAUSER_ROLE = Web3.keccak(text="PAUSER_ROLE")
VALID_UNTIL = (datetime.now(UTC) + timedelta(days=365)).date().isoformat()
CSV_HEADER = "address,residence,class,kyc_level,aml_risk,flags,valid_until,subject,evidence\n"
# Unset for each test. ANVIL_BIN too: tests/anvil.py reads it (anvil has started by then), but load_settings()
# refuses PORTCULLIS_* variables it does not know.
ENV_VARS = (
    "CHAINS",
    "DEV_CHAIN",
    "REGISTRY_KEY",
    "REGISTRY_KEYSTORE",
    "REGISTRY_KEYSTORE_PASSWORD",
    "MODE",
    "ANVIL_BIN",
)


@dataclass
class Roles:
    admin: str
    compliance: str  # ATTESTER_ROLE and REVOKER_ROLE: anvil account #1, the development compliance key
    pauser: str
    outsider: str  # no role at all
    compliance_key: str
    outsider_key: str


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    with Anvil() as anvil:
        yield anvil


@pytest.fixture(scope="module")
def roles(chain: Anvil) -> Roles:
    a = chain.accounts
    return Roles(a[0], a[1], a[2], a[4], chain.private_keys[1], chain.private_keys[4])


@pytest.fixture(scope="module")
def contract(chain: Anvil, roles: Roles) -> Contract:
    deployed = deploy(chain.w3, "ComplianceRegistry", roles.admin, sender=roles.admin)
    for role, holder in ((ATTESTER_ROLE, roles.compliance), (REVOKER_ROLE, roles.compliance)):
        send(deployed.functions.grantRole(role, holder), roles.admin)
    send(deployed.functions.grantRole(PAUSER_ROLE, roles.pauser), roles.admin)
    return deployed


@pytest.fixture(autouse=True)
def _isolated(chain: Anvil, contract: Contract, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts from the freshly deployed registry, with no registry settings in the environment."""
    for name in ENV_VARS:
        monkeypatch.delenv(f"PORTCULLIS_{name}", raising=False)
    snapshot = chain.snapshot()
    yield
    chain.revert(snapshot)


def make_settings(tmp_path: Path, chain: Anvil, contract: Contract, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "chains": [{"chain_id": CHAIN_ID, "rpc_urls": [chain.url], "registry": contract.address}],
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def settings(tmp_path: Path, chain: Anvil, contract: Contract, roles: Roles) -> Settings:
    return make_settings(tmp_path, chain, contract, registry_key=roles.compliance_key)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portcullis")
    registry.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], settings: Settings) -> Cli:
    def run(*argv: str, using: Settings | None = None) -> Result:
        args = build_parser().parse_args(["registry", *argv])
        code = args.fn(using or settings, args)
        out, err = capsys.readouterr()
        if code != 0:  # an error is one line on stderr, never a traceback
            assert len(err.splitlines()) == 1 and "Traceback" not in err, err
            assert err.startswith("portcullis registry: ")
        return Result(code, out, err)

    return run


def wallet(i: int = 0) -> str:
    return "0x" + f"{0xA11CE000 + i:040x}"


def grant_args(address: str, *extra: str) -> list[str]:
    return [
        "grant",
        address,
        "--residence",
        "DE",
        "--class",
        "professional",
        "--kyc-level",
        "2",
        "--flags",
        "appropriateness_derivatives",
        "--valid-until",
        VALID_UNTIL,
        *extra,
    ]


def revision(contract: Contract) -> int:
    return int(contract.functions.revision().call())


# ---------------------------------------------------------------- grant and show


def test_grant_then_show(cli: Cli, contract: Contract, roles: Roles) -> None:
    done = cli(*grant_args(wallet(), "--subject", "cust-42", "--evidence", "KYC-2026-0042"))
    assert done.code == 0, done.err
    assert "tx 0x" in done.out and "in block" in done.out
    record = contract.functions.getRecord(Web3.to_checksum_address(wallet())).call()
    assert record[:5] == (276, 2, 2, 1, 2) and record[7] == roles.compliance
    assert record[9] == Web3.keccak(b"portcullis:registry:subject:v1:cust-42")

    shown = cli("show", wallet())
    assert shown.code == 0
    for text in (
        "status        active",
        "residence     DE (276, Germany)",
        "class         professional",
        "flags         appropriateness_derivatives",
        f"valid until   {VALID_UNTIL}",
        "verified      yes (isVerified)",
        "eligible      yes (isEligible: required -, forbidden us_person,frozen",
    ):
        assert text in shown.out


def test_grant_json_output_and_alpha3_numeric_codes(cli: Cli, chain: Anvil, contract: Contract) -> None:
    first = cli(*grant_args(wallet(1)), "--json", "--residence", "AUT")  # the last --residence wins
    assert first.code == 0, first.err
    data = first.json()
    receipt = chain.w3.eth.get_transaction_receipt(data["tx"])
    assert data["block"] == receipt["blockNumber"] and data["gas_used"] == receipt["gasUsed"]
    assert data["function"] == "setRecord" and data["dry_run"] is False and data["chain_id"] == CHAIN_ID
    assert data["args"]["input"]["residence"] == "AT" and data["args"]["input"]["residence_numeric"] == 40
    assert cli(*grant_args(wallet(2)), "--residence", "756").code == 0
    shown = cli("--json", "show", wallet(2)).json()  # global options before the subcommand work too
    assert shown["record"]["residence"] == "CH" and shown["record"]["class"] == "professional"
    assert shown["record"]["valid_until"] == VALID_UNTIL and shown["verified"] is True


def test_dry_run_sends_nothing(cli: Cli, chain: Anvil, contract: Contract, roles: Roles) -> None:
    nonce, before = chain.w3.eth.get_transaction_count(roles.compliance), revision(contract)
    text = cli(*grant_args(wallet()), "--dry-run")
    assert text.code == 0 and "dry run, nothing sent" in text.out and "estimated gas" in text.out
    assert '"residence": "DE"' in text.out and "setRecord(" in text.out
    data = cli(*grant_args(wallet()), "--dry-run", "--json").json()
    assert data["dry_run"] is True and data["estimated_gas"] > 100_000 and "tx" not in data
    assert data["from"] == roles.compliance
    assert cli("revoke", wallet(), "--reason", "x", "--dry-run").code == 2  # still checked: no record yet
    assert chain.w3.eth.get_transaction_count(roles.compliance) == nonce
    assert revision(contract) == before


def test_show_unknown_wallet_and_ineligible_record(cli: Cli) -> None:
    empty = cli("show", wallet(9), "--json").json()
    assert empty["record"] is None and empty["verified"] is False and empty["eligible"] is False
    assert "record        none" in cli("show", wallet(9)).out
    assert cli(*grant_args(wallet(3)), "--flags", "us_person", "--aml-risk", "3").code == 0
    data = cli("show", wallet(3), "--json").json()
    assert data["verified"] is True and data["eligible"] is False  # the default rule forbids US persons
    assert data["record"]["flags"] == ["us_person"] and data["record"]["aml_risk"] == 3


# ---------------------------------------------------------------- revoke, freeze, unfreeze, history


def test_freeze_unfreeze_revoke_and_history(cli: Cli, chain: Anvil, roles: Roles) -> None:
    assert cli(*grant_args(wallet())).code == 0
    assert cli("freeze", wallet(), "--reason", "AML-CASE-7").code == 0
    frozen = cli("show", wallet(), "--json").json()
    assert frozen["record"]["status"] == "frozen" and frozen["verified"] is False
    assert "is already frozen" in cli("freeze", wallet(), "--reason", "again").err
    assert cli("unfreeze", wallet()).code == 0
    assert "is not frozen" in cli("unfreeze", wallet()).err
    assert cli("revoke", wallet(), "--reason", "account closed").code == 0
    assert "is already revoked" in cli("revoke", wallet(), "--reason", "again").err
    revoked = cli("show", wallet(), "--json").json()["record"]
    assert revoked["status"] == "revoked" and revoked["revocation_reason"] == "account closed"
    assert "has no record" in cli("freeze", wallet(8), "--reason", "x").err

    history = cli("history", wallet(), "--json").json()
    events = history["events"]
    assert [e["event"] for e in events] == ["RecordSet", "RecordFrozen", "RecordUnfrozen", "RecordRevoked"]
    assert [e["block"] for e in events] == sorted(e["block"] for e in events)
    assert [e["revision"] for e in events] == [1, 2, 3, 4]
    assert events[1]["reason"] == "AML-CASE-7" and events[3]["reason"] == "account closed"
    assert all(e["by"] == roles.compliance for e in events)
    for event in events:
        receipt = chain.w3.eth.get_transaction_receipt(event["tx"])
        block = chain.w3.eth.get_block(receipt["blockNumber"])
        assert receipt["blockNumber"] == event["block"]
        assert event["time"] == datetime.fromtimestamp(block["timestamp"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert events[0]["record"]["residence"] == "DE"
    text = cli("history", wallet()).out.splitlines()
    assert (
        text[0].endswith("4 events on chain 31337")
        and "RecordRevoked" in text[4]
        and "account closed" in text[4]
    )
    assert (
        cli("history", wallet(7), "--json").json()["events"] == []
    )  # other wallets' events are filtered out


def test_reason_longer_than_32_bytes(cli: Cli) -> None:
    result = cli("revoke", wallet(), "--reason", "x" * 33)
    assert result.code == 2 and "--reason: 33 bytes in UTF-8, at most 32" in result.err


# ---------------------------------------------------------------- roles


def test_roles_lists_current_holders(cli: Cli, contract: Contract, roles: Roles) -> None:
    text = cli("roles")
    assert text.code == 0
    assert (
        f"DEFAULT_ADMIN_ROLE   {roles.admin}" in text.out
        and f"PAUSER_ROLE          {roles.pauser}" in text.out
    )
    send(contract.functions.grantRole(PAUSER_ROLE, roles.outsider), roles.admin)
    send(contract.functions.revokeRole(PAUSER_ROLE, roles.pauser), roles.admin)
    data = cli("roles", "--json").json()["roles"]
    assert data == {
        "DEFAULT_ADMIN_ROLE": [roles.admin],
        "ATTESTER_ROLE": [roles.compliance],
        "REVOKER_ROLE": [roles.compliance],
        "PAUSER_ROLE": [roles.outsider],
    }


# ---------------------------------------------------------------- CSV grants


def csv_rows(first: int, count: int, **cells: str) -> str:
    lines = []
    for i in range(first, first + count):
        values = ["0x" + f"{0xC5F000 + i:040x}", "DE", "retail", "2", "1", "appropriateness_derivatives"]
        values += [cells.get("valid_until", VALID_UNTIL), f"cust-{i}", ""]
        lines.append(",".join(values) + "\n")
    return "".join(lines)


def test_csv_grant_in_batches_with_progress_then_rerun_skips(
    cli: Cli, tmp_path: Path, chain: Anvil, contract: Contract, roles: Roles
) -> None:
    path = tmp_path / "grants.csv"
    path.write_text(CSV_HEADER + csv_rows(0, 250))
    before = revision(contract)
    result = cli("grant", "--csv", str(path), "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert (data["rows"], data["skipped"], data["sent"]) == (250, 0, 250)
    assert [b["rows"] for b in data["batches"]] == [100, 100, 50]
    assert [b["lines"] for b in data["batches"]] == [[2, 101], [102, 201], [202, 251]]
    progress = result.err.splitlines()
    assert [line.split("] ")[1].split(" rows")[0] for line in progress] == ["100/250", "200/250", "250/250"]
    assert progress[-1].startswith("[" + "#" * 30 + "]") and "batch 3/3 tx 0x" in progress[-1]
    assert revision(contract) == before + 250
    last = contract.functions.getRecord(Web3.to_checksum_address("0x" + f"{0xC5F000 + 249:040x}")).call()
    assert last[0] == 276 and last[6] > 0

    nonce = chain.w3.eth.get_transaction_count(roles.compliance)
    again = cli("grant", "--csv", str(path))
    assert again.code == 0 and "250 rows, 250 already applied, sent 0" in again.out
    assert again.err == "" and revision(contract) == before + 250
    assert chain.w3.eth.get_transaction_count(roles.compliance) == nonce


def test_csv_resumes_and_resends_changed_or_revoked_rows(
    cli: Cli, tmp_path: Path, contract: Contract
) -> None:
    part, full = tmp_path / "part.csv", tmp_path / "full.csv"
    part.write_text(CSV_HEADER + csv_rows(0, 12))
    full.write_text(CSV_HEADER + csv_rows(0, 25))
    assert cli("grant", "--csv", str(part)).code == 0
    first = "0x" + f"{0xC5F000:040x}"
    assert cli("revoke", first, "--reason", "re-KYC").code == 0
    data = cli("grant", "--csv", str(full), "--batch-size", "10", "--json").json()
    assert (data["skipped"], data["sent"]) == (11, 14)  # the revoked row is granted again
    assert [b["rows"] for b in data["batches"]] == [10, 4]
    assert cli("show", first, "--json").json()["record"]["status"] == "active"


def test_csv_dry_run_estimates_each_batch(cli: Cli, tmp_path: Path, contract: Contract) -> None:
    path = tmp_path / "grants.csv"
    path.write_text(CSV_HEADER + csv_rows(0, 30))
    before = revision(contract)
    data = cli("grant", "--csv", str(path), "--batch-size", "20", "--dry-run", "--json").json()
    assert data["dry_run"] is True and data["sent"] == 0
    assert [b["rows"] for b in data["batches"]] == [20, 10] and all(
        b["estimated_gas"] > 0 for b in data["batches"]
    )
    assert revision(contract) == before


def test_csv_with_one_bad_row_is_refused_before_sending(
    cli: Cli, tmp_path: Path, chain: Anvil, contract: Contract, roles: Roles
) -> None:
    path = tmp_path / "grants.csv"
    rows = csv_rows(0, 20).splitlines(keepends=True)
    rows[5] = rows[5].replace(",DE,", ",XX,")  # line 7 of the file
    path.write_text(CSV_HEADER + "".join(rows))
    nonce, before = chain.w3.eth.get_transaction_count(roles.compliance), revision(contract)
    result = cli("grant", "--csv", str(path))
    assert result.code == 2
    assert "grants.csv: 1 bad row, nothing sent: line 7: residence: unknown country code 'XX'" in result.err
    path.write_text(CSV_HEADER + csv_rows(0, 3) + csv_rows(3, 1, valid_until="2020-01-01"))
    expired = cli("grant", "--csv", str(path))
    assert expired.code == 2 and "line 5: valid_until: 2020-01-01 is in the past" in expired.err
    assert cli("grant", "--csv", str(tmp_path / "missing.csv")).err.startswith(
        "portcullis registry: cannot read"
    )
    assert chain.w3.eth.get_transaction_count(roles.compliance) == nonce and revision(contract) == before


# ---------------------------------------------------------------- errors


def test_missing_role_names_the_role(
    cli: Cli, tmp_path: Path, chain: Anvil, contract: Contract, roles: Roles
) -> None:
    outsider = make_settings(tmp_path, chain, contract, registry_key=roles.outsider_key)
    grant = cli(*grant_args(wallet()), using=outsider)
    assert grant.code == 2
    assert f"the signer {roles.outsider} lacks ATTESTER_ROLE on this registry" in grant.err
    revoke = cli("revoke", wallet(), "--reason", "x", using=outsider)
    assert "lacks REVOKER_ROLE" in revoke.err
    as_json = cli(*grant_args(wallet()), "--json", using=outsider)
    assert as_json.code == 2 and json.loads(as_json.out)["type"] == "MissingRoleError"


def test_paused_registry_blocks_grants_not_revocations(
    cli: Cli, tmp_path: Path, contract: Contract, roles: Roles
) -> None:
    assert cli(*grant_args(wallet())).code == 0
    send(contract.functions.pause(), roles.pauser)
    paused = cli(*grant_args(wallet(1)))
    assert paused.code == 2 and "the registry is paused" in paused.err
    path = tmp_path / "grants.csv"
    path.write_text(CSV_HEADER + csv_rows(0, 3))
    batch = cli("grant", "--csv", str(path), "--json")
    assert batch.code == 2 and json.loads(batch.out)["type"] == "RegistryPausedError"
    assert (
        "batch 1/1 (lines 2-4) failed with 0/3 rows applied (re-run to resume): the registry is paused"
        in (batch.err)
    )
    assert "registry      PAUSED" in cli("show", wallet()).out
    assert cli("freeze", wallet(), "--reason", "incident").code == 0  # emergencies still work
    assert "the registry is paused" in cli("unfreeze", wallet()).err


def test_wrong_chain(cli: Cli, tmp_path: Path, chain: Anvil, contract: Contract, roles: Roles) -> None:
    wrong = load_settings(
        data_dir=tmp_path,
        chains=[{"chain_id": 1, "rpc_urls": [chain.url], "registry": contract.address}],
        registry_key=roles.compliance_key,
    )
    result = cli("show", wallet(), using=wrong)
    assert result.code == 2
    assert f"wrong chain: the RPC at {chain.url} serves chain 31337, but chain 1 is configured" in result.err
    assert cli("show", wallet(), "--chain", "5").err.startswith(
        "portcullis registry: chain 5 is not configured (PORTCULLIS_CHAINS has 31337)"
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_rpc_unreachable(cli: Cli, tmp_path: Path, contract: Contract, roles: Roles) -> None:
    port = closed_port()
    down = load_settings(
        data_dir=tmp_path,
        chains=[
            {
                "chain_id": CHAIN_ID,
                "rpc_urls": [f"http://127.0.0.1:{port}/v3/SECRET-API-KEY"],
                "registry": contract.address,
            }
        ],
        registry_key=roles.compliance_key,
    )
    for argv in (("show", wallet()), grant_args(wallet())):
        result = cli(*argv, using=down)
        assert result.code == 2
        assert f"RPC unreachable for chain 31337: http://127.0.0.1:{port} (connection refused)" in result.err
        assert "SECRET" not in result.err


def test_no_registry_configured(cli: Cli, tmp_path: Path, chain: Anvil, contract: Contract) -> None:
    nothing = load_settings(data_dir=tmp_path, dev_chain=False)
    assert "no registry configured: set PORTCULLIS_CHAINS" in cli("roles", using=nothing).err
    no_address = load_settings(data_dir=tmp_path, chains=[{"chain_id": CHAIN_ID, "rpc_urls": [chain.url]}])
    assert "no registry configured for chain 31337" in cli("show", wallet(), using=no_address).err
    not_a_contract = make_settings(
        tmp_path,
        chain,
        contract,
        chains=[{"chain_id": CHAIN_ID, "rpc_urls": [chain.url], "registry": "0x" + "12" * 20}],
    )
    assert "no contract at registry 0x1212" in cli("show", wallet(), using=not_a_contract).err


def test_signer_errors(cli: Cli, tmp_path: Path, chain: Anvil, contract: Contract, roles: Roles) -> None:
    unsigned = make_settings(tmp_path, chain, contract)
    assert (
        "no signer configured: set PORTCULLIS_REGISTRY_KEY" in cli(*grant_args(wallet()), using=unsigned).err
    )
    assert cli("show", wallet(), using=unsigned).code == 0  # reads need no signer
    bad_key = "0x" + "zz" * 31
    bad = make_settings(tmp_path, chain, contract, registry_key=bad_key)
    result = cli("revoke", wallet(), "--reason", "x", using=bad)
    assert (
        "PORTCULLIS_REGISTRY_KEY is not a 32-byte hex private key" in result.err and bad_key not in result.err
    )
    both = make_settings(
        tmp_path, chain, contract, registry_key=roles.compliance_key, registry_keystore=tmp_path / "k"
    )
    assert "not both" in cli("unfreeze", wallet(), using=both).err


def test_keystore_signer(cli: Cli, tmp_path: Path, chain: Anvil, contract: Contract, roles: Roles) -> None:
    keystore = tmp_path / "compliance.json"
    keystore.write_text(
        json.dumps(Account.encrypt(roles.compliance_key, "s3cret", kdf="pbkdf2", iterations=2))
    )
    good = make_settings(
        tmp_path, chain, contract, registry_keystore=keystore, registry_keystore_password="s3cret"
    )
    data = cli(*grant_args(wallet()), "--json", using=good).json()
    assert data["from"] == roles.compliance and data["tx"].startswith("0x")
    wrong = make_settings(
        tmp_path, chain, contract, registry_keystore=keystore, registry_keystore_password="nope"
    )
    assert "wrong password, or not an encrypted JSON keystore" in cli(*grant_args(wallet()), using=wrong).err
    no_password = make_settings(tmp_path, chain, contract, registry_keystore=keystore)
    assert "PORTCULLIS_REGISTRY_KEYSTORE_PASSWORD is not" in cli(*grant_args(wallet()), using=no_password).err


def test_bad_country_dates_and_addresses(cli: Cli) -> None:
    country = cli(*grant_args(wallet()), "--residence", "XX")
    assert "--residence: unknown country code 'XX'" in country.err
    past = cli(*grant_args(wallet()), "--valid-until", "2020-01-01")
    assert "--valid-until: 2020-01-01 is in the past" in past.err
    far = (datetime.now(UTC) + timedelta(days=6 * 365)).date().isoformat()
    assert (
        f"--valid-until: {far} is more than 5 years" in cli(*grant_args(wallet()), "--valid-until", far).err
    )
    assert "is not a date" in cli(*grant_args(wallet()), "--valid-until", "next year").err
    checksummed = Account.create().address
    mixed = checksummed[:2] + checksummed[2:].swapcase()
    if mixed[2:] != mixed[2:].lower():
        assert "wrong EIP-55 checksum" in cli("show", mixed).err
    assert cli("show", checksummed.lower()).code == 0 and cli("show", checksummed).code == 0
    assert "ADDRESS: " not in cli("show", "0x1234").err and "is not an address" in cli("show", "0x1234").err
    assert "grant ADDRESS needs --residence" in cli("grant", wallet()).err
    assert "either ADDRESS" in cli("grant").err
    assert (
        "drop --residence, --class"
        in cli("grant", "--csv", "x.csv", "--residence", "DE", "--class", "retail").err
    )


def test_receipt_timeout(cli: Cli, chain: Anvil) -> None:
    chain.rpc("evm_setAutomine", False)
    try:
        result = cli(*grant_args(wallet()), "--timeout", "0.3")
    finally:
        chain.rpc("evm_setAutomine", True)
    assert result.code == 2 and "was sent but not mined within 0.3 s" in result.err


def test_settings_from_environment(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chain: Anvil, contract: Contract, roles: Roles
) -> None:
    monkeypatch.setenv("PORTCULLIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(
        "PORTCULLIS_CHAINS",
        json.dumps([{"chain_id": CHAIN_ID, "rpc_urls": [chain.url], "registry": contract.address}]),
    )
    monkeypatch.setenv("PORTCULLIS_REGISTRY_KEY", roles.compliance_key)
    from_env = load_settings()
    assert cli(*grant_args(wallet()), using=from_env).code == 0
    assert cli("show", wallet(), "--json", using=from_env).json()["verified"] is True


# ---------------------------------------------------------------- the development chain of `make run`


class DevServer:
    """A stand-in for the server's /dev/chain endpoints (a fake: the real ones come with `make run`),
    forwarding JSON-RPC to anvil."""

    def __init__(self, rpc_url: str, registry_address: str) -> None:
        info = json.dumps(
            {"chain_id": CHAIN_ID, "registry": registry_address.lower(), "compliance_key_hint": "anvil #1"}
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(200, info) if self.path == "/dev/chain/info" else self._answer(404, b"{}")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                forwarded = httpx.post(rpc_url, content=body, headers={"Content-Type": "application/json"})
                self._answer(forwarded.status_code, forwarded.content)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> DevServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_development_chain_with_the_seeded_compliance_key(
    cli: Cli, tmp_path: Path, chain: Anvil, contract: Contract, roles: Roles
) -> None:
    assert Account.from_key(registry.DEV_COMPLIANCE_KEY).address == roles.compliance
    with DevServer(chain.url, contract.address) as dev:
        development = load_settings(data_dir=tmp_path, issuer=dev.url, dev_chain=True)
        data = cli(*grant_args(wallet()), "--json", using=development).json()
        assert data["from"] == roles.compliance and data["registry"] == contract.address
        assert data["chain_id"] == CHAIN_ID
        assert cli("show", wallet(), "--json", using=development).json()["verified"] is True
        assert "only the development chain 31337" in cli("roles", "--chain", "1", using=development).err
        outsider = load_settings(
            data_dir=tmp_path, issuer=dev.url, dev_chain=True, registry_key=roles.outsider_key
        )
        refused = cli(*grant_args(wallet(1)), using=outsider)
        assert f"the signer {roles.outsider} lacks ATTESTER_ROLE" in refused.err
        assert refused.err.rstrip().endswith("the development chain's compliance key is anvil #1")
    gone = cli("show", wallet(), using=development)
    assert "cannot reach the development server" in gone.err and "is `make run` running?" in gone.err


def test_development_key_is_refused_in_production(cli: Cli, tmp_path: Path) -> None:
    production = load_settings(
        data_dir=tmp_path,
        mode="production",
        issuer="https://auth.example.com",
        secret_key="p" * 40,
        dev_chain=True,
        compliance="off",  # production without a chain: allowed only with the gate off on purpose
    )
    assert production.dev_chain is False
    assert "no registry configured" in cli(*grant_args(wallet()), using=production).err
    with pytest.raises(registry.SignerError, match="refused outside development mode"):
        registry.dev_signer(production)
