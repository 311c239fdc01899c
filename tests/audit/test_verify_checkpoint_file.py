"""``portcullis audit verify`` and the external checkpoint file: a missing file is not "OK", and another log's
file is named as such, not taken for tampering (docs/AUDIT.md, "Checkpoints"). Both backends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from app.audit.checkpoints import FileSink
from app.cli.main import main
from tests.audit.test_tamper_evidence import fill
from tests.conftest import FakeClock, make_settings, running_app

SECRET = "verify-secret-" + "v" * 40


async def write_log(tmp_path: Path, database_url: str) -> Path:
    """A log written by a real app; its clean shutdown leaves a signed checkpoint in the file."""
    settings = make_settings(tmp_path, database_url=database_url, secret_key=SECRET)
    async with running_app(settings, FakeClock()) as h:
        await fill(h)
    sink = tmp_path / "audit-checkpoints.jsonl"
    assert sink.exists()
    return sink


async def verify(monkeypatch: pytest.MonkeyPatch, capsys: Any, env: dict[str, str], *argv: str) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = await asyncio.to_thread(main, ["audit", "verify", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def env_for(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "PORTCULLIS_DATA_DIR": str(data_dir),
        "PORTCULLIS_DATABASE_URL": database_url,
        "PORTCULLIS_SECRET_KEY": SECRET,
        **extra,
    }


async def test_missing_checkpoint_file_is_not_ok(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    sink = await write_log(tmp_path, database_url)
    env = env_for(tmp_path, database_url)
    code, out, _ = await verify(monkeypatch, capsys, env)
    assert code == 0 and "audit log OK: 10 entries (1..10), 1 signed checkpoints" in out
    sink.unlink()
    code, out, err = await verify(monkeypatch, capsys, env)
    assert code == 1 and out == ""
    assert err.startswith(f"audit log NOT VERIFIED: the external checkpoint file {sink} was not found")
    assert "--allow-missing-checkpoints" in err and len(err.splitlines()) == 1
    code, out, _ = await verify(monkeypatch, capsys, env, "--allow-missing-checkpoints")
    assert code == 0 and "audit log OK" in out
    assert f"note: the external checkpoint file {sink} was not found: checked against the database's" in out


async def test_checkpoint_file_of_another_log(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The development SQLite log's file against this log (PostgreSQL in the second variant)."""
    await write_log(tmp_path / "this", database_url)
    other_sink = await write_log(tmp_path / "dev", f"sqlite+aiosqlite:///{tmp_path / 'dev' / 'dev.db'}")
    env = env_for(tmp_path / "this", database_url, PORTCULLIS_AUDIT_CHECKPOINT_FILE=str(other_sink))
    code, out, err = await verify(monkeypatch, capsys, env)
    assert code == 1 and out == ""
    assert err.startswith(f"audit log NOT VERIFIED: the checkpoint file {other_sink} belongs to another log")
    assert "rewritten" not in err and "BROKEN" not in err
    named = json.loads(other_sink.read_text().splitlines()[0])["log_id"]
    assert f"(log {named}; this database's log is " in err


async def test_checkpoints_without_identity_still_verify(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A file written before logs had an identity (no ``log_id``) verifies as before, and a foreign one of
    that age is still recognised: none of its signing keys is this log's."""
    settings = make_settings(tmp_path, database_url=sqlite_url, secret_key=SECRET)
    async with running_app(settings, FakeClock()) as h:
        await fill(h)
        checkpointer = h.app.state.runtime_checkpointer
        seq, head_hash = await h.app.state.provider.audit_log.head()
        legacy = checkpointer.signer.sign(seq, head_hash, "2026-01-01T00:00:00.000Z")  # no log id
        assert legacy.log_id is None
        assert await h.app.state.provider.checkpoint_store.add_checkpoint(legacy)
        FileSink(settings.audit_checkpoint_file).write(legacy, checkpointer.signer.public_jwk)
        checkpointer.last_seq = seq  # nothing new to sign at shutdown
    lines = [json.loads(line) for line in Path(settings.audit_checkpoint_file).read_text().splitlines()]
    assert len(lines) == 1 and "log_id" not in lines[0]
    env = env_for(tmp_path, sqlite_url)
    code, out, err = await verify(monkeypatch, capsys, env)
    assert code == 0 and "audit log OK: 10 entries (1..10), 1 signed checkpoints" in out, err

    other = tmp_path / "other"
    other_settings = make_settings(other, database_url=f"sqlite+aiosqlite:///{other / 'o.db'}")
    async with running_app(other_settings, FakeClock()) as h:
        await fill(h)
    env = env_for(other, f"sqlite+aiosqlite:///{other / 'o.db'}")
    env["PORTCULLIS_AUDIT_CHECKPOINT_FILE"] = str(settings.audit_checkpoint_file)
    code, _, err = await verify(monkeypatch, capsys, env)
    assert code == 1 and "belongs to another log (signed by audit keys " in err


async def test_a_changed_log_identity_is_a_finding_not_another_log(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Someone rewrites audit_head.log_id: the database's own signed checkpoints still name the real log."""
    from sqlalchemy import update

    from app.storage.db import create_engine
    from app.storage.models import AuditHead

    await write_log(tmp_path, database_url)
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(update(AuditHead).where(AuditHead.id == 1).values(log_id="f" * 32))
    await engine.dispose()
    code, _, err = await verify(monkeypatch, capsys, env_for(tmp_path, database_url))
    assert code == 1 and err.startswith("audit log BROKEN at entry 10: checkpoint: signed for log ")
    assert err.rstrip().endswith(f"but the head names log {'f' * 32}: its identity was changed")
