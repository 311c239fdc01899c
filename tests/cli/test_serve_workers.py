"""``portcullis serve --workers N``: what start-up refuses before any worker exists (docs/DEPLOY.md)."""

from __future__ import annotations

import pytest

from app.cli.main import main
from app.settings import SettingsError, load_settings


def test_one_worker_is_the_default() -> None:
    assert load_settings().workers == 1


def test_several_workers_on_sqlite_are_refused_with_a_pointer_to_postgresql(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORTCULLIS_DEV_CHAIN", "false")
    assert main(["serve", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "PORTCULLIS_WORKERS: 2 workers need PostgreSQL" in err
    assert "postgresql+asyncpg://" in err


def test_the_environment_variable_is_refused_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTCULLIS_WORKERS", "3")
    monkeypatch.setenv("PORTCULLIS_DEV_CHAIN", "false")
    with pytest.raises(SettingsError, match="PORTCULLIS_WORKERS: 3 workers need PostgreSQL"):
        load_settings()


def test_postgresql_takes_several_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTCULLIS_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("PORTCULLIS_DEV_CHAIN", "false")
    assert load_settings(workers=4).workers == 4


def test_the_in_process_development_chain_takes_one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTCULLIS_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    with pytest.raises(SettingsError, match="development chain lives inside one process"):
        load_settings(workers=2)
