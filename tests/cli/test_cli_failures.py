"""Ordinary mistakes give one line and an exit code, not a traceback; ``--debug`` shows the traceback. Every
case runs a real ``portcullis`` process: a bad option, PostgreSQL down or a database missing, a secret that
does not open the stored keys, and Ctrl-C (SIGINT) in the middle of ``registry grant --csv`` on a slow chain.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from web3 import Web3

from tests.anvil import Anvil, deploy, send
from tests.integration.server import free_port

PG_ENV = "PORTCULLIS_TEST_DATABASE_URL"


def environment(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    return {**env, "PORTCULLIS_DATA_DIR": str(data_dir), **settings}


def portcullis(env: dict[str, str], *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The process failed with ``code`` and said so in exactly one line, without a traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def postgres_url(database: str) -> str:
    admin = os.environ.get(PG_ENV)
    if not admin:
        pytest.skip(f"{PG_ENV} is not set: these cases need a PostgreSQL server")
    return make_url(admin).set(drivername="postgresql+asyncpg", database=database).render_as_string(False)


@pytest.mark.parametrize(
    ("option", "value"), [("--since", "yesterday"), ("--until", "2026-13-01"), ("--subject", "0x1234")]
)
def test_audit_export_bad_options(tmp_path: Path, option: str, value: str) -> None:
    env = environment(tmp_path)
    line = one_line(portcullis(env, "audit", "export", option, value), 2)
    assert line.startswith(f"portcullis: {option} '{value}' is not a")
    debug = portcullis(env, "--debug", "audit", "export", option, value)
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1] == line


def test_database_unreachable_at_serve(tmp_path: Path) -> None:
    url = f"postgresql://portcullis:secret-password@127.0.0.1:{free_port()}/portcullis"
    line = one_line(portcullis(environment(tmp_path, PORTCULLIS_DATABASE_URL=url), "serve"), 1)
    assert line.startswith(
        "portcullis: cannot connect to the database at postgresql://portcullis:***@127.0.0.1:"
    )
    assert "is it running? (PORTCULLIS_DATABASE_URL)" in line and "secret-password" not in line


def test_db_upgrade_against_a_missing_database(tmp_path: Path) -> None:
    url = postgres_url("portcullis_missing_" + os.urandom(4).hex())
    env = environment(tmp_path, PORTCULLIS_DATABASE_URL=url)
    line = one_line(portcullis(env, "db", "upgrade"), 1)
    name = make_url(url).database
    assert line.startswith(f'portcullis: database "{name}" does not exist at postgresql+asyncpg://')
    assert line.endswith(f"create it (e.g. `createdb {name}`) or fix PORTCULLIS_DATABASE_URL")
    debug = portcullis(env, "--debug", "db", "upgrade")
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


def test_a_secret_that_does_not_open_the_stored_keys(tmp_path: Path) -> None:
    first = environment(tmp_path, PORTCULLIS_SECRET_KEY="the-first-secret-" + "a" * 32)
    assert portcullis(first, "keys", "list").returncode == 0  # creates and stores the keys
    other = environment(tmp_path, PORTCULLIS_SECRET_KEY="another-secret-" + "b" * 32)
    for argv in (["serve"], ["keys", "list"]):
        line = one_line(portcullis(other, *argv), 1)
        assert "cannot be decrypted: PORTCULLIS_SECRET_KEY is not the one it was stored with" in line
        assert line.endswith("set PORTCULLIS_SECRET_KEY to the secret this database's keys were stored with")


# ---------------------------------------------------------------- Ctrl-C during registry grant --csv

ROWS = 6
HEADER = "address,residence,class,kyc_level,aml_risk,flags,valid_until,subject,evidence\n"


@pytest.fixture(scope="module")
def slow_chain() -> Iterator[Anvil]:
    """A chain that mines a block every 2 s: each batch waits for its block, so SIGINT lands mid-run."""
    with Anvil(block_time=2) as anvil:
        yield anvil


def test_ctrl_c_during_grant_csv_says_which_batches_went_through(slow_chain: Anvil, tmp_path: Path) -> None:
    admin, officer = slow_chain.accounts[0], slow_chain.accounts[1]
    registry = deploy(slow_chain.w3, "ComplianceRegistry", admin, sender=admin)
    send(registry.functions.grantRole(Web3.keccak(text="ATTESTER_ROLE"), officer), admin)
    until = (datetime.now(UTC) + timedelta(days=90)).date().isoformat()
    wallets = ["0x" + f"{0xC7C000 + i:040x}" for i in range(ROWS)]
    csv_file = tmp_path / "grants.csv"
    csv_file.write_text(HEADER + "".join(f"{w},DE,retail,2,1,,{until},,\n" for w in wallets))
    chains = [{"chain_id": 31337, "rpc_urls": [slow_chain.url], "registry": registry.address}]
    env = environment(
        tmp_path, PORTCULLIS_CHAINS=json.dumps(chains), PORTCULLIS_REGISTRY_KEY=slow_chain.private_keys[1]
    )
    argv = [sys.executable, "-m", "app.cli.main", "registry", "grant", "--csv", str(csv_file)]
    proc = subprocess.Popen([*argv, "--batch-size", "1"], env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while not any("batch 1/6 tx 0x" in line for line in seen):  # the first batch is mined
        assert time.monotonic() < deadline and proc.poll() is None, seen
        if select.select([proc.stderr], [], [], 1)[0]:
            seen.append(proc.stderr.readline())
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    code = proc.wait(timeout=30)
    assert code == 130, rest
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest
    line = rest.splitlines()[-1]
    assert line.startswith("portcullis registry: interrupted: ")
    assert " of 6 batches went through (line 2 in tx 0x" in line
    assert line.endswith("re-run the same command to resume (applied rows are skipped)")
    went = int(line.split("interrupted: ")[1].split(" of 6")[0])
    assert 1 <= went < ROWS
    # the line is the truth: the rows it says went through hold records, the ones after the pending batch none
    for w in wallets[:went]:
        assert registry.functions.getRecord(Web3.to_checksum_address(w)).call()[6] > 0
    time.sleep(4)  # a batch reported as sent but unconfirmed may be mined meanwhile; nothing after it is
    for w in wallets[went + 1 :]:
        assert registry.functions.getRecord(Web3.to_checksum_address(w)).call()[6] == 0
    # Ctrl-C lands while a batch waits for its block, or between batches (a progress line being written)
    under_way = (" was sent as tx 0x" in line) or (" was not sent;" in line)
    assert under_way or "; no batch was under way;" in line, line
    if not under_way:
        assert registry.functions.getRecord(Web3.to_checksum_address(wallets[went])).call()[6] == 0

    resumed = portcullis(env, "registry", "grant", "--csv", str(csv_file), "--batch-size", "3")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{ROWS} rows, " in resumed.stdout and " already applied, sent " in resumed.stdout

    # The audit log holds what went through: the interrupted run's batches (a failure entry naming the
    # mined transactions), then the resumed run's.
    exported = portcullis(env, "audit", "export")
    entries = [json.loads(x) for x in exported.stdout.splitlines()[1:]]
    runs = [e for e in entries if e.get("type") == "operator.registry_write"]
    assert [(e["outcome"], e["reason"]) for e in runs] == [
        ("failure", "stopped: GrantInterrupted"),
        ("success", "registry grant"),
    ]
    mined = [part[:66] for part in line.split(" in tx ")[1:]]
    unconfirmed = [part[:66] for part in line.split(" was sent as tx ")[1:]]  # mined or not, it was sent
    assert runs[0]["data"]["transactions"] == mined + unconfirmed and len(mined) == went
    assert runs[0]["data"].get("unconfirmed", []) == unconfirmed
    assert runs[0]["data"]["batches"][0]["accounts"] == [Web3.to_checksum_address(wallets[0])]
    verify = portcullis(env, "audit", "verify", "--allow-missing-checkpoints")
    assert verify.returncode == 0, verify.stdout + verify.stderr
