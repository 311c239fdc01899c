"""``portcullis serve --workers N``: what start-up refuses before any worker exists, and the draining mark
SIGTERM sets before uvicorn's graceful shutdown (docs/DEPLOY.md, "Workers and replicas")."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from starlette.applications import Starlette

from app.cli.main import main
from app.cli.workers import drain_on_signals
from app.settings import SettingsError, load_settings
from tests.conftest import FakeClock, make_settings, running_app


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


class ServerSignals:
    """Stands in for uvicorn's Server.handle_exit (a bound method, as uvicorn installs it)."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def handle_exit(self, signum: int, _frame: object) -> None:
        self.received.append(signum)


def test_sigterm_marks_the_app_draining_before_uvicorn_shuts_down(tmp_path: Path) -> None:
    app = Starlette()
    server = ServerSignals()
    previous = signal.signal(signal.SIGTERM, server.handle_exit)
    try:
        drain_on_signals(app)
        assert not getattr(app.state, "draining", False)
        signal.raise_signal(signal.SIGTERM)
        assert app.state.draining is True
        assert server.received == [signal.SIGTERM]  # uvicorn's own graceful shutdown still runs
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_a_server_nothing_is_wrapped() -> None:
    previous = signal.getsignal(signal.SIGINT)
    drain_on_signals(Starlette())
    assert signal.getsignal(signal.SIGINT) is previous


async def test_a_draining_app_is_not_ready(tmp_path: Path, sqlite_url: str) -> None:
    async with running_app(make_settings(tmp_path, database_url=sqlite_url), FakeClock()) as h:
        assert (await h.client.get("/ready")).status_code == 200
        h.app.state.draining = True
        reply = await h.client.get("/ready")
        assert reply.status_code == 503 and reply.json() == {"status": "draining"}  # app/http/readiness.py
        assert "retry-after" in reply.headers
        assert (await h.client.get("/health")).status_code == 200  # process-only, as before
