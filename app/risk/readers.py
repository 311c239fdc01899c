"""One prebuilt read statement run straight on the database driver, on connections held for it.

Through ``AsyncConnection.execute`` on a pooled connection, a one-row read costs far more than the query:
on PostgreSQL the pool's pre-ping (BEGIN, ``;``, ROLLBACK) and the statement's own BEGIN and ROLLBACK are
five round trips besides the statement's; on SQLite every cursor call and the rollback on return is a hop
to aiosqlite's thread and back. ``HeldReaders`` keeps a few connections checked out of the engine's pool
(so the engine's configuration applies to them) and ``PreparedRead`` runs its statement on the driver
connection under them, outside any transaction: one round trip, or one hop, per read. Each read is a
single statement, so it sees one consistent state of the database on both backends. On PostgreSQL the
held connections use the statement's generic plan instead of planning it again on every read (see
``_SESSION``); the setting is undone before a connection goes back to the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

DEFAULT_READERS = 2

log = logging.getLogger("portcullis.risk")

# Session settings of the held connections, and how to undo them before they go back to the pool. On
# PostgreSQL a prepared statement is planned again on every execution for as long as its custom plans
# look cheaper than its generic one, which for a statement of a few index ranges bounded by parameters is
# always (measured: 0.7-0.9 ms of planning per read on a 200,000-entry log, against 0.1 ms of execution).
# The generic plan reads the same index ranges; plan_cache_mode is PostgreSQL 12 and later.
_SESSION: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {"postgresql": ("SET plan_cache_mode = force_generic_plan", "RESET plan_cache_mode")}
)


class PreparedRead:
    """``statement`` compiled once for ``dialect``; ``fetch_one`` runs it on a driver connection."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        if dialect.driver not in ("aiosqlite", "asyncpg"):
            raise ValueError(f"PreparedRead: unsupported database driver {dialect.driver!r}")
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        # In order of position (each name once: PostgreSQL numbers a repeated parameter once).
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Values the statement carries itself; the others must come with each call.
        self._own = {name: value for name, value in compiled.params.items() if value is not None}
        self._sqlite = dialect.driver == "aiosqlite"

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for ``sql``: ``params`` by name, and the statement's own values."""
        return [self._own[name] if name in self._own else params[name] for name in self.names]

    async def fetch_one(self, driver: Any, params: Mapping[str, Any]) -> Sequence[Any]:
        """The statement's one row (an aiosqlite or asyncpg connection: ``driver_connection``)."""
        args = self.args(params)
        if self._sqlite:
            rows = await driver.execute_fetchall(self.sql, args)
            return tuple(next(iter(rows)))
        return tuple(await driver.fetchrow(self.sql, *args))


@dataclass(slots=True)
class _Held:
    conn: AsyncConnection
    driver: Any
    session_set: bool = False  # the session settings were applied: undo them before giving it back


class HeldReaders:
    """Up to ``size`` connections of ``engine``, opened on first use and kept until ``close``.

    A read waits while all ``size`` are busy. A connection whose read fails is dropped (invalidated), and
    a read that fails on a connection that sat idle is tried once more on a fresh one: the idle one may
    have been cut (server restart, idle timeout), which the pool's pre-ping would otherwise have caught.
    A read that timed out (the engine's statement timeout) is not tried again: the database is not
    answering, and a second wait would double the request's.
    """

    def __init__(self, engine: AsyncEngine, size: int = DEFAULT_READERS) -> None:
        if size < 1:
            raise ValueError("HeldReaders needs at least one connection")
        self._engine = engine
        self._session = _SESSION.get(engine.dialect.name)
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Held] = []
        self._closed = False

    async def fetch_one(self, read: PreparedRead, params: Mapping[str, Any]) -> Sequence[Any]:
        async with self._slots:
            if self._closed:
                raise RuntimeError("HeldReaders: closed")
            if self._idle:
                try:
                    return await self._run(self._idle.pop(), read, params)
                except TimeoutError:
                    raise  # the database is not answering: another connection would only wait again
                except Exception as exc:  # the idle connection may have been cut: one try on a fresh one
                    log.debug("held reader: idle connection failed: %s", type(exc).__name__)
            return await self._run(await self._open(), read, params)

    async def _run(self, held: _Held, read: PreparedRead, params: Mapping[str, Any]) -> Sequence[Any]:
        try:
            row = await read.fetch_one(held.driver, params)
        except BaseException:
            await _drop(held)
            raise
        if self._closed:
            await self._give_back(held)
        else:
            self._idle.append(held)
        return row

    async def _open(self) -> _Held:
        conn = await self._engine.connect()
        try:
            held = _Held(conn, (await conn.get_raw_connection()).driver_connection)
        except BaseException:
            await conn.close()
            raise
        if self._session is not None:
            try:
                await held.driver.execute(self._session[0])
                held.session_set = True
            except Exception:  # a server without the setting (PostgreSQL before 12): plans every time
                log.warning("held readers: %r refused; reads are planned each time", self._session[0])
            except BaseException:  # cancelled meanwhile: the connection's state is unknown
                await _drop(held)
                raise
        return held

    async def _give_back(self, held: _Held) -> None:
        if self._session is not None and held.session_set:
            try:
                await held.driver.execute(self._session[1])
            except Exception:
                await _drop(held)  # not back to the pool with our settings: closed instead
                return
        await held.conn.close()

    async def close(self) -> None:
        """Give the idle connections back to the pool; busy ones go back when their read ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for held in idle:
            await self._give_back(held)


async def _drop(held: _Held) -> None:
    with contextlib.suppress(Exception):
        await held.conn.invalidate()
    with contextlib.suppress(Exception):
        await held.conn.close()
