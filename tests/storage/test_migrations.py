"""Alembic migrations: applied from empty on both backends, idempotent, and in step with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from app.storage import migrate
from app.storage.db import create_engine
from app.storage.models import Base


async def test_upgrade_from_empty_matches_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        await migrate.upgrade(engine)  # a second run is a no-op
        head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
        assert head is not None and await migrate.current_revision(engine) == head

        def diff(conn: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

        def tables(conn: Connection) -> set[str]:
            return set(inspect(conn).get_table_names())

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
            expected = {
                "siwe_nonces",
                "refresh_tokens",
                "signing_keys",
                "audit_log",
                "audit_head",
                "audit_checkpoints",
            }
            assert expected <= await conn.run_sync(tables)
    finally:
        await engine.dispose()


def test_cli_db_upgrade(tmp_path: object, monkeypatch: object, capsys: object) -> None:
    from app.cli.main import main

    monkeypatch.setenv("PORTCULLIS_DATA_DIR", str(tmp_path))  # type: ignore[attr-defined]
    assert main(["db", "upgrade"]) == 0
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    assert f"database at revision {head}" in capsys.readouterr().out  # type: ignore[attr-defined]
