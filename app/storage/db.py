"""Engine construction for the two supported backends: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

RECYCLE_SECONDS = 300  # a pooled connection older than this is replaced at checkout


@dataclass(frozen=True, slots=True)
class Timeouts:
    """PostgreSQL time bounds in seconds (PORTCULLIS_DATABASE_*_TIMEOUT_SECONDS).

    ``connect``: opening a connection (asyncpg ``timeout``: TCP, TLS and start-up). ``statement``: any one
    round trip on it (asyncpg ``command_timeout``). ``pool``: the wait for a free pooled connection when
    all are busy. Together they bound how long a request waits on a database that does not answer: at
    worst the pool wait, a connect and its first statement, 4 s with the defaults; the first failure
    answers 503. The same bounds apply to the hot path's own asyncpg pool (app.storage.hot).
    ``statement`` None means unbounded: migrations
    (an index built on a large table) run on such an engine of their own, never on the serving one.
    """

    connect: float = 1.5
    statement: float | None = 1.5
    pool: float = 1.0


def create_engine(database_url: str, timeouts: Timeouts | None = None) -> AsyncEngine:
    """An async engine for ``database_url``; SQLite gets WAL, a busy timeout and foreign keys;
    PostgreSQL gets ``timeouts`` and drops a connection that failed at once."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+asyncpg")
        limits = timeouts or Timeouts()
        engine = create_async_engine(
            url,
            pool_size=10,
            max_overflow=20,
            # No ping per checkout (BEGIN, ';', ROLLBACK: three round trips): connections are recycled
            # after RECYCLE_SECONDS, and one cut meanwhile fails its statement once and is dropped
            # (invalidated); the hot path (app.storage.hot) also sends such a first statement again.
            pool_recycle=RECYCLE_SECONDS,
            pool_timeout=limits.pool,
            connect_args={"timeout": limits.connect, "command_timeout": limits.statement},
        )
        event.listen(engine.sync_engine.pool, "invalidate", _abort_connection)
        return engine
    raise ValueError(f"unsupported database backend {url.get_backend_name()!r} (use sqlite or postgresql)")


def _abort_connection(_dbapi_connection: Any, record: Any, _exc: BaseException | None) -> None:
    """An invalidated connection (timed out, reset) is closed without a goodbye.

    SQLAlchemy would otherwise close it gracefully: send Terminate and wait up to 2 s for the server,
    which on a black-holed link never answers, adding those seconds to the request that found it broken.
    """
    driver = record.driver_connection  # the asyncpg connection; terminate() aborts its transport
    if driver is not None:
        driver.terminate()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the single writer; busy_timeout makes writers queue instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
