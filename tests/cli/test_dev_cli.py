"""``portcullis --version``, ``portcullis dev reset`` and the start-up banner's rows (app/cli/dev.py,
app/cli/banner.py). Real ``portcullis`` processes where the claim is about the command line; the server
process itself is in tests/integration/test_dev_chain_restart.py."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from app.chain.devchain import open_dev_chain
from app.chain.devchain_journal import journal_path
from app.cli import banner
from app.cli.dev import reset_chain
from app.cli.failures import UsageError
from app.settings import load_settings
from tests.cli.test_cli_failures import environment, one_line, portcullis


def test_version_prints_the_package_version() -> None:
    result = portcullis(environment(Path("/nonexistent")), "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"portcullis {version('portcullis')}\n"


def test_version_works_even_with_bad_settings(tmp_path: Path) -> None:
    result = portcullis(environment(tmp_path, PORTCULLIS_MODE="nonsense"), "--version")
    assert result.returncode == 0 and result.stdout.startswith("portcullis ")


def test_reset_with_yes_deletes_the_chain(tmp_path: Path) -> None:
    open_dev_chain(tmp_path).close()
    assert journal_path(tmp_path).exists()
    result = portcullis(environment(tmp_path), "dev", "reset", "--yes")
    assert result.returncode == 0, result.stderr
    assert "deleted" in result.stdout and "(1 blocks)" in result.stdout
    assert not journal_path(tmp_path).exists()
    again = portcullis(environment(tmp_path), "dev", "reset", "--yes")
    assert again.returncode == 0 and "no development chain state" in again.stdout


def test_reset_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    open_dev_chain(tmp_path).close()
    command = [sys.executable, "-m", "app.cli.main", "dev", "reset"]
    result = subprocess.run(
        command,
        env=environment(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = one_line(result, 2)
    assert line == "portcullis: dev reset: no terminal to ask for confirmation; pass --yes"
    assert journal_path(tmp_path).exists()


def test_reset_asks_and_keeps_the_chain_unless_confirmed(tmp_path: Path) -> None:
    open_dev_chain(tmp_path).close()
    settings = load_settings(data_dir=tmp_path)
    questions: list[str] = []
    assert reset_chain(settings, yes=False, ask=lambda q: questions.append(q) or "n") == 1
    assert journal_path(tmp_path).exists()
    assert "Delete the development chain in" in questions[0] and questions[0].endswith("[y/N] ")
    assert reset_chain(settings, yes=False, ask=lambda q: "y") == 0
    assert not journal_path(tmp_path).exists()


def test_reset_refuses_in_production(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        mode="production",
        issuer="https://id.example",
        secret_key="s" * 40,
        compliance="off",
    )
    with pytest.raises(UsageError, match="only in development mode"):
        reset_chain(settings, yes=True)


def test_reset_refuses_while_a_server_holds_the_chain(tmp_path: Path) -> None:
    held = open_dev_chain(tmp_path)  # what a running `portcullis serve` holds
    try:
        line = one_line(portcullis(environment(tmp_path), "dev", "reset", "--yes"), 1)
    finally:
        held.close()
    assert "a running server holds the development chain" in line and "stop it" in line
    assert journal_path(tmp_path).exists()


def test_reset_clears_a_corrupt_journal(tmp_path: Path) -> None:
    """The way out that the unreadable-journal message names must work on an unreadable journal."""
    journal_path(tmp_path).write_text("not json at all\n")
    assert portcullis(environment(tmp_path), "dev", "reset", "--yes").returncode == 0
    assert not journal_path(tmp_path).exists()


SECRETS = ("hunter2-db-password", "sk-secret-key-" + "x" * 30, "0x" + "ab" * 32, "infura-key-123", "pw-query")


def test_banner_rows_name_what_is_served_and_no_secret(tmp_path: Path) -> None:
    chains = [
        {
            "chain_id": 1,
            "rpc_urls": [
                f"https://user:pw@mainnet.example/v3/{SECRETS[3]}?k={SECRETS[3]}",
                "http://[::1]:8545",
            ],
            "registry": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        }
    ]
    settings = load_settings(
        data_dir=tmp_path,
        database_url=f"postgresql+asyncpg://portcullis:{SECRETS[0]}@db.example/auth?sslpassword={SECRETS[4]}",
        secret_key=SECRETS[1],
        registry_key=SECRETS[2],
        chains=json.loads(json.dumps(chains)),
        compliance="required",
    )
    rows = banner.start_up_rows(settings, None)
    text = banner.render(rows)
    assert not any(secret in text for secret in SECRETS), text
    assert text.splitlines()[0] == f"portcullis {version('portcullis')}"
    assert "  issuer     http://127.0.0.1:8000" in text.splitlines()  # labels aligned
    shown = dict(rows)
    assert shown["mode"] == "development"
    assert shown["database"] == "postgresql+asyncpg://portcullis:***@db.example/auth"
    assert shown["chain 1"] == (
        "registry 0x5FbDB2315678afecb367f032d93F642f64180aa3, rpc https://mainnet.example, http://[::1]:8545"
    )


def test_banner_rows_of_the_development_chain(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    chain = open_dev_chain(tmp_path)
    try:
        rows = dict(banner.start_up_rows(settings, chain))
    finally:
        chain.close()
    assert rows["chain 31337"] == "development chain, registry 0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert rows["dev chain rpc"] == "http://127.0.0.1:8000/dev/chain/rpc"
    assert rows["dev chain file"].startswith(f"{journal_path(tmp_path)} (new chain;")
    assert rows["demo dApp"].startswith("http://127.0.0.1:8000/demo/ (open it in a browser")
    extended = [*banner.start_up_rows(settings, None), ("sample api", "http://127.0.0.1:8001")]
    assert banner.render(extended).endswith("sample api  http://127.0.0.1:8001")
