"""`portcullis registry deploy | roles grant|revoke | pause | unpause` and the operator entries of every
write, against a real anvil and a real audit log (SQLite in the test's data dir), run in-process through
the parser that `registry.add_parser` builds. `audit verify` checks the log after each test."""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from app.cli import audit as audit_cli
from app.cli import registry
from app.settings import Settings, load_settings
from tests.anvil import CHAIN_ID, Anvil, contract_at

VALID_UNTIL = (datetime.now(UTC) + timedelta(days=365)).date().isoformat()
ATTESTER_ROLE = Web3.keccak(text="ATTESTER_ROLE")
PAUSER_ROLE = Web3.keccak(text="PAUSER_ROLE")
ENV_VARS = ("CHAINS", "DEV_CHAIN", "REGISTRY_KEY", "REGISTRY_KEYSTORE", "REGISTRY_KEYSTORE_PASSWORD", "MODE")
ENV_VARS += ("ANVIL_BIN", "DATABASE_URL")


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


@pytest.fixture(autouse=True)
def _isolated(chain: Anvil, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENV_VARS:
        monkeypatch.delenv(f"PORTCULLIS_{name}", raising=False)
    snapshot = chain.snapshot()
    yield
    chain.revert(snapshot)


def settings_for(tmp_path: Path, chain: Anvil, key: str, registry_address: str | None = None) -> Settings:
    entry: dict[str, Any] = {"chain_id": CHAIN_ID, "rpc_urls": [chain.url]}
    if registry_address is not None:
        entry["registry"] = registry_address
    return load_settings(data_dir=tmp_path, chains=[entry], registry_key=key)


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    def run(settings: Settings, *argv: str) -> Result:
        parser = argparse.ArgumentParser(prog="portcullis")
        registry.add_parser(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["registry", *argv])
        code = args.fn(settings, args)
        out, err = capsys.readouterr()
        if code != 0:  # an error is one line on stderr, never a traceback
            assert len(err.splitlines()) == 1 and "Traceback" not in err, err
            assert err.startswith("portcullis registry: ")
        return Result(code, out, err)

    return run


def operator_entries(settings: Settings) -> list[dict[str, Any]]:
    """The log as `portcullis audit export` writes it (the proof line first), operator entries only."""
    out = io.StringIO()
    assert audit_cli.export(settings, None, None, "jsonl", None, out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return [e for e in lines if e.get("type") == "operator.registry_write"]


def verified(settings: Settings, capsys: pytest.CaptureFixture[str]) -> bool:
    """`portcullis audit verify` passes. No server ran here, so no checkpoint exists yet: the hash chain
    and the gapless sequence are what is checked."""
    code = audit_cli.verify(settings, 1, allow_missing_checkpoints=True)
    out, err = capsys.readouterr()
    assert code == 0, out + err
    return "audit log OK" in out


def grant_argv(address: str) -> list[str]:
    record = [
        "--residence",
        "DE",
        "--class",
        "professional",
        "--kyc-level",
        "2",
        "--valid-until",
        VALID_UNTIL,
    ]
    return ["grant", address, *record, "--subject", "cust-42"]


def deploy(cli: Cli, tmp_path: Path, chain: Anvil) -> str:
    deployed = cli(settings_for(tmp_path, chain, chain.private_keys[0]), "deploy", "--json")
    assert deployed.code == 0, deployed.err
    return str(deployed.json()["registry"])


# ---------------------------------------------------------------- deploy


def test_deploy_prints_the_setting_then_grant_works_on_the_new_registry(
    cli: Cli, chain: Anvil, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin, officer = chain.accounts[0], chain.accounts[1]
    deployer = settings_for(tmp_path, chain, chain.private_keys[0])
    done = cli(deployer, "deploy", "--operator", "alice@compliance")
    assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert lines[0].startswith("deployed ComplianceRegistry at 0x") and f"admin {admin}" in lines[0]
    address = lines[0].split()[3]
    assert chain.w3.eth.get_code(address)
    setting = lines[2].strip()
    assert setting.startswith("PORTCULLIS_CHAINS='") and setting.endswith("'")
    chains = json.loads(setting.removeprefix("PORTCULLIS_CHAINS='").removesuffix("'"))
    assert chains == [{"chain_id": CHAIN_ID, "rpc_urls": [chain.url], "registry": address}]

    # The printed setting is what the next commands run with.
    as_admin = load_settings(data_dir=tmp_path, chains=chains, registry_key=chain.private_keys[0])
    assert cli(as_admin, "roles", "grant", "ATTESTER", officer).code == 0
    as_officer = load_settings(data_dir=tmp_path, chains=chains, registry_key=chain.private_keys[1])
    wallet = Web3.to_checksum_address("0x" + "ab" * 20)
    granted = cli(as_officer, *grant_argv(wallet), "--json")
    assert granted.code == 0, granted.err
    record = contract_at(chain.w3, "ComplianceRegistry", address).functions.getRecord(wallet).call()
    assert record[0] == 276 and record[7] == officer

    deploy_entry, role_entry, grant_entry = operator_entries(as_admin)
    data = deploy_entry["data"]
    assert deploy_entry["actor"] == "operator:alice@compliance" and deploy_entry["outcome"] == "success"
    assert data["command"] == "registry deploy" and data["operator"] == "alice@compliance"
    assert data["signer"] == admin and data["chain_id"] == CHAIN_ID and data["registry"] == address
    assert data["transactions"] == [done.out.split("tx ")[1].split()[0]]
    receipt = chain.w3.eth.get_transaction_receipt(data["transactions"][0])
    assert receipt["contractAddress"] == address and data["blocks"] == [receipt["blockNumber"]]
    assert data["argv"] == ["registry", "deploy", "--operator", "alice@compliance"]
    assert role_entry["data"]["command"] == "registry roles grant"
    assert role_entry["data"]["args"] == {"role": "ATTESTER_ROLE", "account": officer}
    assert grant_entry["data"]["signer"] == officer and grant_entry["data"]["function"] == "setRecord"
    assert grant_entry["data"]["transactions"] == [granted.json()["tx"]]
    assert grant_entry["seq"] == granted.json()["audit_seq"]
    assert "cust-42" not in json.dumps(grant_entry)  # the subject text is hashed, as on chain
    assert grant_entry["data"]["argv"][-2:] == ["--subject", "<hashed>"]
    assert verified(as_admin, capsys)


def test_deploy_writes_the_chains_file_the_server_reads(
    cli: Cli, chain: Anvil, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--chains-file (docker-compose.yml's deploy job): the list with the new registry, which
    PORTCULLIS_CHAINS_FILE then loads as the server's chains."""
    written = tmp_path / "shared" / "chains.json"
    written.parent.mkdir()
    done = cli(settings_for(tmp_path, chain, chain.private_keys[0]), "deploy", "--chains-file", str(written))
    assert done.code == 0, done.err
    address = done.out.split()[3]
    assert written.stat().st_mode & 0o777 == 0o600 and not list(written.parent.glob("*.partial"))
    served = load_settings(data_dir=tmp_path, chains_file=written)
    assert [(c.chain_id, c.rpc_urls, c.registry) for c in served.chains] == [(CHAIN_ID, [chain.url], address)]


def test_deploy_with_another_admin_and_a_dry_run(
    cli: Cli, chain: Anvil, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path, chain, chain.private_keys[0])
    nonce = chain.w3.eth.get_transaction_count(chain.accounts[0])
    dry = cli(settings, "deploy", "--dry-run", "--admin", chain.accounts[5])
    assert dry.code == 0, dry.err
    assert dry.out.startswith("dry run, nothing sent: deploy ComplianceRegistry on chain 31337")
    assert chain.w3.eth.get_transaction_count(chain.accounts[0]) == nonce
    assert not (tmp_path / "portcullis.db").exists()  # a dry run does not even open the audit log

    done = cli(settings, "deploy", "--admin", chain.accounts[5], "--json").json()
    contract = contract_at(chain.w3, "ComplianceRegistry", done["registry"])
    assert contract.functions.hasRole(b"\0" * 32, chain.accounts[5]).call()
    assert not contract.functions.hasRole(b"\0" * 32, chain.accounts[0]).call()
    assert [e["data"]["args"] for e in operator_entries(settings)] == [{"admin": chain.accounts[5]}]


# ---------------------------------------------------------------- roles


def test_roles_grant_and_revoke_take_effect_on_chain(
    cli: Cli, chain: Anvil, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = deploy(cli, tmp_path, chain)
    settings = settings_for(tmp_path, chain, chain.private_keys[0], address)
    contract = contract_at(chain.w3, "ComplianceRegistry", address)
    someone = chain.accounts[3]

    dry = cli(settings, "roles", "grant", "pauser", someone, "--dry-run")
    assert dry.code == 0 and dry.out.startswith("dry run, nothing sent: grant PAUSER_ROLE to ")
    assert not contract.functions.hasRole(PAUSER_ROLE, someone).call()

    granted = cli(settings, "roles", "grant", "PAUSER_ROLE", someone, "--json")
    assert granted.code == 0, granted.err
    assert contract.functions.hasRole(PAUSER_ROLE, someone).call()
    listed = cli(settings, "roles")  # the listing without an action still works
    assert listed.code == 0 and f"PAUSER_ROLE          {someone}" in listed.out

    again = cli(settings, "roles", "grant", "Pauser", someone)
    assert again.code == 0 and again.out.strip() == f"{someone} already holds PAUSER_ROLE: nothing sent"

    revoked = cli(settings, "roles", "revoke", "pauser", someone, "--operator", "bob")
    assert revoked.code == 0, revoked.err
    assert not contract.functions.hasRole(PAUSER_ROLE, someone).call()
    assert revoked.out.startswith(f"revoke PAUSER_ROLE from {someone}: tx 0x")

    entries = operator_entries(settings)
    assert [e["data"]["command"] for e in entries] == [
        "registry deploy",
        "registry roles grant",
        "registry roles revoke",
    ]
    assert entries[1]["data"]["transactions"] == [granted.json()["tx"]]
    assert entries[2]["actor"] == "operator:bob" and entries[2]["data"]["function"] == "revokeRole"
    assert verified(settings, capsys)


def test_bad_role_or_address_is_one_line_and_exit_2(cli: Cli, chain: Anvil, tmp_path: Path) -> None:
    address = deploy(cli, tmp_path, chain)
    settings = settings_for(tmp_path, chain, chain.private_keys[0], address)
    bad_role = cli(settings, "roles", "grant", "SUPERUSER", chain.accounts[3])
    assert bad_role.code == 2 and "ROLE: unknown role 'SUPERUSER': give one of ADMIN" in bad_role.err
    bad_address = cli(settings, "roles", "revoke", "ATTESTER", "0x1234")
    assert bad_address.code == 2 and "'0x1234' is not an address" in bad_address.err
    missing = cli(settings, "roles", "grant", "ATTESTER")
    assert missing.code == 2 and "roles grant needs ROLE and ADDRESS" in missing.err
    bad_admin = cli(settings, "deploy", "--admin", "0xnope")
    assert bad_admin.code == 2 and "is not an address" in bad_admin.err
    outsider = settings_for(tmp_path, chain, chain.private_keys[4], address)
    refused = cli(outsider, "roles", "grant", "ATTESTER", chain.accounts[4])
    assert refused.code == 2
    assert f"the signer {chain.accounts[4]} lacks DEFAULT_ADMIN_ROLE on this registry" in refused.err
    assert len(operator_entries(settings)) == 1  # the deployment; refusals send nothing, record nothing


# ---------------------------------------------------------------- pause


def test_pause_blocks_grant_and_unpause_restores_it(
    cli: Cli, chain: Anvil, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = deploy(cli, tmp_path, chain)
    admin = settings_for(tmp_path, chain, chain.private_keys[0], address)
    for role in ("ATTESTER", "PAUSER"):
        assert cli(admin, "roles", "grant", role, chain.accounts[1]).code == 0
    officer = settings_for(tmp_path, chain, chain.private_keys[1], address)
    contract = contract_at(chain.w3, "ComplianceRegistry", address)

    dry = cli(officer, "pause", "--dry-run")
    assert dry.code == 0 and not contract.functions.paused().call()
    paused = cli(officer, "pause")
    assert paused.code == 0, paused.err
    assert contract.functions.paused().call()
    assert (
        cli(officer, "pause").err.strip()
        == "portcullis registry: the registry is already paused: nothing sent"
    )

    blocked = cli(officer, *grant_argv(chain.accounts[7]))
    assert blocked.code == 2
    assert blocked.err.strip() == (
        "portcullis registry: the registry is paused: grant and unfreeze are blocked until an admin "
        "unpauses it (revoke and freeze still work)"
    )
    not_admin = cli(officer, "unpause")
    assert not_admin.code == 2 and "lacks DEFAULT_ADMIN_ROLE" in not_admin.err

    unpaused = cli(admin, "unpause", "--json")
    assert unpaused.code == 0, unpaused.err
    assert not contract.functions.paused().call()
    assert cli(officer, *grant_argv(chain.accounts[7])).code == 0

    entries = operator_entries(admin)
    commands = [e["data"]["command"] for e in entries]
    assert commands[-3:] == ["registry pause", "registry unpause", "registry grant"]
    pause_entry, unpause_entry = entries[-3], entries[-2]
    assert pause_entry["data"]["signer"] == chain.accounts[1] and pause_entry["data"]["function"] == "pause"
    assert unpause_entry["data"]["transactions"] == [unpaused.json()["tx"]]
    assert unpause_entry["data"]["signer"] == chain.accounts[0]
    assert verified(admin, capsys)


# ---------------------------------------------------------------- the record writes


def test_record_writes_and_csv_batches_leave_operator_entries(
    cli: Cli, chain: Anvil, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = deploy(cli, tmp_path, chain)
    admin = settings_for(tmp_path, chain, chain.private_keys[0], address)
    for role in ("ATTESTER", "REVOKER"):
        assert cli(admin, "roles", "grant", role, chain.accounts[1]).code == 0
    officer = settings_for(tmp_path, chain, chain.private_keys[1], address)
    wallets = [chain.accounts[i] for i in (6, 7, 8, 9)]
    csv = tmp_path / "onboarding.csv"
    csv.write_text(
        "address,residence,class,kyc_level,valid_until\n"
        + "".join(f"{w},DE,retail,2,{VALID_UNTIL}\n" for w in wallets)
    )
    # The row of line 3 is applied already: the run skips it, and its entry does not name it.
    record = ["--residence", "DE", "--class", "retail", "--kyc-level", "2", "--valid-until", VALID_UNTIL]
    assert cli(officer, "grant", wallets[1], *record).code == 0
    assert cli(officer, "grant", "--csv", str(csv), "--dry-run").code == 0
    batches = cli(officer, "grant", "--csv", str(csv), "--batch-size", "2", "--json")
    assert batches.code == 0, batches.err
    assert cli(officer, "grant", "--csv", str(csv)).out.endswith("4 already applied, sent 0\n")  # no entry
    for argv in (["freeze", wallets[0], "--reason", "AML-7"], ["unfreeze", wallets[0]]):
        assert cli(officer, *argv).code == 0
    assert cli(officer, "revoke", wallets[1], "--reason", "closed", "--dry-run").code == 0
    assert cli(officer, "revoke", wallets[1], "--reason", "closed").code == 0

    entries = operator_entries(admin)[3:]  # after the deployment and two role grants
    assert [e["data"]["command"] for e in entries] == [
        "registry grant",
        "registry grant",
        "registry freeze",
        "registry unfreeze",
        "registry revoke",
    ]  # the dry runs and the run with nothing to send wrote nothing
    csv_entry = entries[1]["data"]
    sent = [b["tx"] for b in batches.json()["batches"]]
    assert len(sent) == 2 and csv_entry["transactions"] == sent
    assert csv_entry["csv"] == "onboarding.csv" and csv_entry["rows"] == 4
    assert [b["accounts"] for b in csv_entry["batches"]] == [[wallets[0], wallets[2]], [wallets[3]]]
    assert [b["lines"] for b in csv_entry["batches"]] == [[2, 4], [5, 5]]
    assert csv_entry["argv"] == ["registry", "grant", "--csv", str(csv), "--batch-size", "2"]
    freeze = entries[2]["data"]
    assert freeze["args"]["account"] == wallets[0]
    assert freeze["args"]["reason"] == "0x" + b"AML-7".ljust(32, b"\0").hex()
    assert all(e["data"]["signer"] == chain.accounts[1] for e in entries)
    assert verified(admin, capsys)


# ---------------------------------------------------------------- the audit log fails


def test_audit_log_unwritable_before_sending_sends_nothing(cli: Cli, chain: Anvil, tmp_path: Path) -> None:
    address = deploy(cli, tmp_path, chain)
    settings = settings_for(tmp_path, chain, chain.private_keys[0], address)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    broken = settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{blocked}/portcullis.db"})
    nonce = chain.w3.eth.get_transaction_count(chain.accounts[0])
    refused = cli(broken, "pause")
    assert refused.code == 1
    assert refused.err.startswith("portcullis registry: the audit log cannot be written, nothing sent: ")
    assert chain.w3.eth.get_transaction_count(chain.accounts[0]) == nonce


def test_audit_log_lost_after_the_chain_write_says_so_with_the_hash(
    cli: Cli, chain: Anvil, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The database goes away while the transaction waits to be mined: exit 1, one line, the tx hash."""
    address = deploy(cli, tmp_path, chain)
    settings = settings_for(tmp_path, chain, chain.private_keys[0], address)
    assert cli(settings, "roles", "grant", "PAUSER", chain.accounts[0]).code == 0
    database = tmp_path / "portcullis.db"
    chain.rpc("evm_setAutomine", False)

    def lose_database_then_mine() -> None:
        deadline = time.monotonic() + 30
        while int(chain.rpc("txpool_status")["pending"], 16) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{database}{suffix}")
            if path.exists():
                path.rename(f"{path}.away")
        chain.rpc("evm_mine")

    helper = threading.Thread(target=lose_database_then_mine)
    helper.start()
    try:
        lost = cli(settings, "pause")
    finally:
        helper.join()
        chain.rpc("evm_setAutomine", True)
    assert lost.code == 1
    assert lost.err.startswith("portcullis registry: the chain write went through (tx 0x")
    assert "but its audit entry could not be written: " in lost.err
    assert lost.err.rstrip().endswith("record the transaction hash by hand")
    tx = lost.err.split("(tx ")[1].split(")")[0]
    assert chain.w3.eth.get_transaction_receipt(tx)["status"] == 1
    assert contract_at(chain.w3, "ComplianceRegistry", address).functions.paused().call()

    for suffix in ("", "-wal", "-shm"):  # the database comes back: the log is intact, without that entry
        Path(f"{database}{suffix}").unlink(missing_ok=True)  # what the failed append opened in its place
    for suffix in ("", "-wal", "-shm"):
        away = Path(f"{database}{suffix}.away")
        if away.exists():
            away.replace(f"{database}{suffix}")
    commands = [e["data"]["command"] for e in operator_entries(settings)]
    assert commands == ["registry deploy", "registry roles grant"]
    assert verified(settings, capsys)


def test_a_write_sent_but_not_mined_in_time_is_recorded_as_unconfirmed(
    cli: Cli, chain: Anvil, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = deploy(cli, tmp_path, chain)
    settings = settings_for(tmp_path, chain, chain.private_keys[0], address)
    chain.rpc("evm_setAutomine", False)
    try:
        late = cli(settings, "roles", "grant", "REVOKER", chain.accounts[2], "--timeout", "0.5")
    finally:
        chain.rpc("evm_setAutomine", True)
        chain.rpc("evm_mine")  # the late transaction, so that no pending one outlives this test
    assert late.code == 2 and " was sent but not mined within 0.5 s " in late.err
    tx = late.err.split(" tx ")[1].split()[0]
    entry = operator_entries(settings)[-1]
    assert entry["outcome"] == "failure" and entry["reason"] == "stopped: TransactionError"
    assert entry["data"]["transactions"] == [tx] and entry["data"]["unconfirmed"] == [tx]
    assert entry["data"]["args"] == {"role": "REVOKER_ROLE", "account": chain.accounts[2]}
    assert verified(settings, capsys)
