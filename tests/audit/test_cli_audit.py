"""``portcullis audit verify | export | tail | purge`` on a log a real server wrote."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.cli.main import main
from tests.audit import tamper
from tests.audit.test_tamper_evidence import fill
from tests.conftest import FakeClock, make_settings, running_app


@pytest.fixture
async def written_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PORTCULLIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PORTCULLIS_SECRET_KEY", "cli-secret-" + "z" * 40)
    settings = make_settings(tmp_path, secret_key="cli-secret-" + "z" * 40)
    # written three days ago, so that a one-day retention has something to purge
    async with running_app(settings, FakeClock(datetime.now(UTC) - timedelta(days=3))) as h:
        await fill(h)
    return tmp_path


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_verify_ok_then_broken(written_log: Path, capsys: Any) -> None:
    code, out, _ = await _in_thread(run, capsys, "audit", "verify")
    assert code == 0 and "audit log OK: 10 entries (1..10), 1 signed checkpoints" in out
    from app.storage.db import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{written_log / 'portcullis.db'}")
    await tamper.modify(engine, 4)
    await engine.dispose()
    code, _, err = await _in_thread(run, capsys, "audit", "verify")
    assert code == 1 and "audit log BROKEN at entry 4: modified" in err
    code, out, _ = await _in_thread(run, capsys, "audit", "verify", "--from", "5")
    assert code == 0 and "(5..10)" in out


async def test_export_jsonl_and_csv(written_log: Path, capsys: Any) -> None:
    code, out, _ = await _in_thread(run, capsys, "audit", "export", "--format", "jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    proof, entries = lines[0], lines[1:]
    assert code == 0 and proof["kind"] == "proof" and proof["contiguous"] is True
    assert proof["anchor_prev_hash"] == "0" * 64 and len(entries) == 10
    assert proof["checkpoints"][0]["seq"] == 10 and proof["audit_keys"]
    assert [e["seq"] for e in entries] == list(range(1, 11))
    subject = next(e["actor"] for e in entries if e["type"] == "signin.succeeded")
    code, out, _ = await _in_thread(run, capsys, "audit", "export", "--subject", subject)
    only = [json.loads(line) for line in out.splitlines()][1:]
    assert [e["actor"] for e in only] == [subject]
    target = written_log / "extract.csv"
    code, _, _ = await _in_thread(run, capsys, "audit", "export", "--format", "csv", "--output", str(target))
    table = list(csv.DictReader(io.StringIO(target.read_text())))
    assert code == 0 and len(table) == 10 and table[0]["hash"] and table[0]["prev_hash"] == "0" * 64
    assert json.loads(Path(f"{target}.proof.json").read_text())["last_seq"] == 10
    code, out, _ = await _in_thread(run, capsys, "audit", "export", "--since", "2999-01-01")
    assert [json.loads(line) for line in out.splitlines()][1:] == []


async def test_tail(written_log: Path, capsys: Any) -> None:
    code, out, _ = await _in_thread(run, capsys, "audit", "tail", "-n", "3")
    rows = out.splitlines()
    assert code == 0 and len(rows) == 3 and rows[-1].split()[0] == "10"
    assert "signin.succeeded" in rows[-1] and "did:pkh:eip155:1:0x" in rows[-1]


async def test_purge_respects_retention_and_checkpoints(
    written_log: Path, capsys: Any, monkeypatch: Any
) -> None:
    code, out, _ = await _in_thread(run, capsys, "audit", "purge", "--dry-run")
    assert code == 0 and "nothing to purge" in out  # everything is younger than 7 years
    monkeypatch.setenv("PORTCULLIS_AUDIT_RETENTION_DAYS", "1")
    code, out, _ = await _in_thread(run, capsys, "audit", "purge", "--dry-run")
    assert code == 0 and "would purge entries up to 10" in out
    code, out, _ = await _in_thread(run, capsys, "audit", "purge")
    assert code == 0 and "purged 10 entries up to 10" in out, out
    code, out, _ = await _in_thread(run, capsys, "audit", "verify")
    assert code == 0 and "entries up to 10 were purged" in out
    # the log goes on from the checkpoint: the purge itself is entry 11, new sign-ins follow
    settings = make_settings(written_log, secret_key="cli-secret-" + "z" * 40)
    async with running_app(settings, FakeClock()) as h:
        await fill(h)
    code, out, err = await _in_thread(run, capsys, "audit", "verify")
    assert code == 0 and "(11..19)" in out, out + err


async def _in_thread(fn: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args)
