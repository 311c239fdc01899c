"""Several `portcullis serve` replicas on one PostgreSQL database and one Redis, for the scale-out tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_ENV, TEST_SECRET
from tests.integration.server import ServerProcess

REDIS_URL = "redis://127.0.0.1:6379/6"  # this suite's Redis database (other suites use others)


def database_rows(database_url: str, sql: str) -> list[tuple[object, ...]]:
    """The rows of one query on ``database_url`` (an asyncpg URL), read with a connection of its own."""
    import asyncpg

    async def query() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(
            database_url.replace("postgresql+asyncpg://", "postgresql://"), timeout=5
        )
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(query())


async def _admin(sql: str) -> None:
    import asyncpg

    admin = os.environ[PG_ENV].replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(admin, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def postgres_database_sync() -> Iterator[str]:
    """A fresh database (an asyncpg URL) for a module of real processes; skips without PostgreSQL."""
    if not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} is not set: the replica tests need a PostgreSQL server")
    name = f"portcullis_r_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        pytest.skip(f"PostgreSQL at {PG_ENV} is not answering: {exc}")
    base = os.environ[PG_ENV].rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def redis_available() -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 6379)) == 0


def replica_env(database_url: str, issuer: str, **extra: str) -> dict[str, str]:
    return {
        "PORTCULLIS_ISSUER": issuer,  # the public name every replica answers for
        "PORTCULLIS_SECRET_KEY": TEST_SECRET,
        "PORTCULLIS_DATABASE_URL": database_url,
        "PORTCULLIS_DEV_CHAIN": "false",
        "PORTCULLIS_COMPLIANCE": "off",
        **extra,
    }


@contextlib.contextmanager
def replicas(tmp: Path, ports: list[int], env: dict[str, str]) -> Iterator[list[ServerProcess]]:
    """Start one replica per port (each its own data dir), all on ``env``; stop them all afterwards."""
    with contextlib.ExitStack() as stack:
        started = []
        for port in ports:
            data = tmp / f"replica-{port}"
            data.mkdir(parents=True, exist_ok=True)
            started.append(stack.enter_context(ServerProcess(data, port=port, **env)))
        yield started
