"""The storage hot path: statements compiled once, run straight on the database driver.

SQLAlchemy builds and compiles every statement here once (``Sql``); what runs per request is the driver:
asyncpg's prepared statements on PostgreSQL (a raw ``asyncpg`` pool, each connection preparing a statement
the first time it sees it and reusing it after), ``sqlite3`` on SQLite. A unit of work is a *body*: a
generator that yields ``Step`` s (a statement and its parameters) and receives each step's ``Result``. The
same body runs on both backends; the driver decides how:

- PostgreSQL: one pooled connection for the whole body, in one transaction for a write (BEGIN, the
  steps, COMMIT) or none for a read;
- SQLite: the whole body runs on one thread, in one hop from the event loop: writes on the one writer
  thread (under the engine's single-writer lock, app/storage/writes.py), reads on a reader thread (WAL
  lets them run beside the writer).

Liveness without a ping per checkout: the pool recycles connections idle for ``IDLE_RECYCLE_SECONDS``,
and a body whose *first* statement fails on a connection that had sat in the pool (cut by a server
restart or an idle timeout) is run once more on a fresh connection. A timeout is never retried: the
database is not answering, and a second wait would double the request's.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.sql.expression import ClauseElement

from app.storage.db import Timeouts

T = TypeVar("T")
IDLE_RECYCLE_SECONDS: Final = 300.0  # asyncpg closes a connection idle this long (no ping per checkout)
POOL_SIZE: Final = 10


def _result_processor(column: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    kind = getattr(column, "type", None)
    if kind is None:
        return None
    processor: Callable[[Any], Any] | None = kind._cached_result_processor(dialect, None)
    return processor


class Sql:
    """``statement`` compiled once for ``dialect``: its text, parameter order and type conversions.

    Parameters go through the same bind processors SQLAlchemy would use (UTC datetimes as SQLite text,
    for instance), and RETURNING / SELECT columns through the same result processors, so rows written
    here and by the SQLAlchemy cold paths read back alike.
    """

    def __init__(self, statement: ClauseElement, dialect: Dialect, columns: Sequence[str] = ()) -> None:
        kw: dict[str, Any] = {"column_keys": list(columns)} if columns else {}
        compiled: Any = statement.compile(dialect=dialect, **kw)
        self.text = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._own = {name: value for name, value in compiled.params.items() if value is not None}
        binds = compiled._bind_processors
        self._binds = tuple(binds.get(name) for name in self.names)
        self.writes = bool(compiled.isinsert or compiled.isupdate or compiled.isdelete)
        returned = compiled.returning if self.writes else list(getattr(statement, "selected_columns", ()))
        self.returns_rows = bool(returned) or not self.writes
        self._results = tuple(_result_processor(c, dialect) for c in returned or ())

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, bind in zip(self.names, self._binds, strict=True):
            value = self._own[name] if name in self._own and name not in params else params[name]
            out.append(bind(value) if bind is not None and value is not None else value)
        return out

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        if not self._results:
            return tuple(raw)
        procs = self._results
        return tuple(p(v) if p is not None else v for p, v in zip(procs, raw, strict=False))


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a body; ``many`` runs it once per parameter set (no rows back)."""

    sql: Sql
    params: Mapping[str, Any] = field(default_factory=dict)
    many: Sequence[Mapping[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class Result:
    rows: list[tuple[Any, ...]]
    rowcount: int

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None


Body = Generator[Step, Result, T]


def one(step: Step) -> Body[Result]:
    """A body of one statement (``yield from one(step)``)."""
    return (yield step)


class HotDriver:
    """Runs bodies on one backend. ``write`` in one transaction, ``read`` outside any."""

    async def write(self, body: Body[T]) -> T:
        raise NotImplementedError

    async def read(self, body: Body[T]) -> T:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def _drive(body: Body[T], run: Callable[[Step], Result]) -> T:
    """Run a body to its end with a blocking ``run`` (SQLite, on the thread that owns the connection)."""
    try:
        step = next(body)
        while True:
            step = body.send(run(step))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class SqliteDriver(HotDriver):
    """sqlite3 connections on their own threads: one writer, one reader; one hop per body."""

    def __init__(self, path: str, write_lock: asyncio.Lock | None) -> None:
        self._path = path
        self._lock = write_lock or asyncio.Lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="portcullis-sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="portcullis-sqlite-reader")
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=True)
            # The engine's pragmas (app/storage/db.py): WAL, a busy timeout for other processes' writers.
            for pragma in ("journal_mode=WAL", "busy_timeout=30000", "foreign_keys=ON", "synchronous=NORMAL"):
                conn.execute(f"PRAGMA {pragma}")
            self._local.conn = conn
        return conn

    def _step(self, conn: sqlite3.Connection, step: Step) -> Result:
        sql = step.sql
        if step.many is not None:
            cursor = conn.executemany(sql.text, [sql.args(p) for p in step.many])
            return Result([], cursor.rowcount)
        cursor = conn.execute(sql.text, sql.args(step.params))
        rows = [sql.row(r) for r in cursor.fetchall()] if sql.returns_rows else []
        return Result(rows, len(rows) if sql.returns_rows and sql.writes else cursor.rowcount)

    def _transaction(self, body: Body[T]) -> T:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            value = _drive(body, lambda step: self._step(conn, step))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return value

    def _plain(self, body: Body[T]) -> T:
        conn = self._conn()
        return _drive(body, lambda step: self._step(conn, step))

    async def write(self, body: Body[T]) -> T:
        loop = asyncio.get_running_loop()
        async with self._lock:
            return await loop.run_in_executor(self._writer, self._transaction, body)

    async def read(self, body: Body[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._plain, body)

    async def close(self) -> None:
        def close_mine() -> None:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
                self._local.conn = None

        loop = asyncio.get_running_loop()
        for pool in (self._writer, self._reader):
            with contextlib.suppress(Exception):
                await loop.run_in_executor(pool, close_mine)
            pool.shutdown(wait=False)


class PgDriver(HotDriver):
    """A raw asyncpg pool; asyncpg prepares each statement once per connection and caches it."""

    def __init__(self, dsn: str, timeouts: Timeouts) -> None:
        self._dsn = dsn
        self._timeouts = timeouts
        self._pool: Any = None
        self._opening = asyncio.Lock()

    @property
    def pool(self) -> Any:
        """The asyncpg pool once opened (None before the first statement): its use is a metric."""
        return self._pool

    async def _get_pool(self) -> Any:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    import asyncpg

                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=0,
                        max_size=POOL_SIZE,
                        max_inactive_connection_lifetime=IDLE_RECYCLE_SECONDS,
                        timeout=self._timeouts.connect,
                        command_timeout=self._timeouts.statement,
                    )
        return self._pool

    async def _run(self, conn: Any, step: Step) -> Result:
        sql = step.sql
        if step.many is not None:
            await conn.executemany(sql.text, [sql.args(p) for p in step.many])
            return Result([], len(step.many))
        args = sql.args(step.params)
        if sql.returns_rows:
            rows = [sql.row(r) for r in await conn.fetch(sql.text, *args)]
            return Result(rows, len(rows))
        status: str = await conn.execute(sql.text, *args)
        tail = status.rsplit(" ", 1)[-1]
        return Result([], int(tail) if tail.isdigit() else 0)

    async def _first(self, body: Body[T], transaction: bool) -> tuple[Any, Result | None, T | None]:
        """Acquire a connection and run the body's first statement (after BEGIN for a write).

        A connection that breaks before that first statement answered (cut while it sat in the pool) is
        dropped and the statement sent once more on another: nothing of the body has happened yet.
        """
        try:
            step = next(body)
        except StopIteration as done:
            return None, None, done.value
        for attempt in (1, 2):
            conn = await self._acquire()
            try:
                if transaction:
                    await conn.execute("BEGIN")
                return conn, await self._run(conn, step), None
            except TimeoutError:
                await self._release(conn, broken=True)
                raise
            except BaseException as exc:
                broken = not isinstance(exc, Exception) or _is_disconnect(exc)
                if transaction and not broken:
                    await self._rollback(conn)
                await self._release(conn, broken=broken)
                if attempt == 1 and isinstance(exc, Exception) and _is_disconnect(exc):
                    continue
                body.close()
                raise
        raise AssertionError("unreachable")

    async def _body(self, body: Body[T], transaction: bool) -> T:
        conn, result, value = await self._first(body, transaction)
        if conn is None:
            return value  # type: ignore[return-value]
        assert result is not None
        try:
            while True:
                try:
                    step = body.send(result)
                except StopIteration as done:
                    if transaction:
                        await conn.execute("COMMIT")
                    value = done.value
                    break
                result = await self._run(conn, step)
        except TimeoutError:
            body.close()
            await self._release(conn, broken=True)
            raise
        except BaseException as exc:
            body.close()
            broken = not isinstance(exc, Exception) or _is_disconnect(exc)
            if transaction and not broken:
                await self._rollback(conn)
            await self._release(conn, broken=broken)
            raise
        await self._release(conn, broken=False)
        return value  # type: ignore[no-any-return]

    async def _rollback(self, conn: Any) -> None:
        try:
            await asyncio.wait_for(conn.execute("ROLLBACK"), self._timeouts.connect)
        except Exception:
            conn.terminate()

    async def _acquire(self) -> Any:
        pool = await self._get_pool()
        return await pool.acquire(timeout=self._timeouts.pool)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """One of the pool's connections, held until the block ends (waits as a request would)."""
        conn = await self._acquire()
        try:
            yield conn
        finally:
            await self._release(conn, broken=False)

    async def _release(self, conn: Any, broken: bool) -> None:
        if broken:
            conn.terminate()  # no goodbye on a link that may be black-holed (see app/storage/db.py)
        with contextlib.suppress(Exception):
            await self._pool.release(conn)

    async def write(self, body: Body[T]) -> T:
        return await self._body(body, transaction=True)

    async def read(self, body: Body[T]) -> T:
        return await self._body(body, transaction=False)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 2.0)
            except Exception:
                pool.terminate()


def _is_disconnect(exc: BaseException) -> bool:
    import asyncpg

    return isinstance(exc, asyncpg.ConnectionDoesNotExistError | asyncpg.InterfaceError | OSError)


def create_driver(database_url: str, timeouts: Timeouts, write_lock: asyncio.Lock | None) -> HotDriver:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ":memory:"
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        return SqliteDriver(database, write_lock)
    if url.get_backend_name() == "postgresql":
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PgDriver(dsn, timeouts)
    raise ValueError(f"unsupported database backend {url.get_backend_name()!r}")
