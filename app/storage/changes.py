"""Changes one process makes that the others cache: PostgreSQL LISTEN/NOTIFY on one channel.

Every process (worker or replica) keeps a few things in memory: the key ring, the dynamic client registry,
the compliance decisions of the chain readers. A process that changes one of them in the database calls
:func:`announce` on the same connection, inside the same transaction: PostgreSQL delivers a NOTIFY at
COMMIT and drops it on ROLLBACK, so a notification can neither arrive before its change is visible nor be
sent for a change that did not happen. Each process runs one :class:`ChangeListener` that LISTENs and
calls the handler for the topic (reload the keys, reload the clients, drop the account's decision).

Why PostgreSQL and not Redis pub/sub: PostgreSQL is already the system of record and every replica talks
to it; Redis is optional and ephemeral, and a publish after the commit could be lost between the two.

A notification is at most once: while a listener's connection is down it hears nothing. So on every
(re)connect the listener calls every handler once (re-read everything), and the housekeeping loop
re-reads keys and clients every ``key_reload_seconds`` anyway (docs/DEPLOY.md, "Propagation").

SQLite is one process (several workers are refused at start-up), so :func:`announce` is a no-op there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("portcullis.changes")

CHANNEL: Final = "portcullis_changes"
KEYS: Final = "keys"  # a signing key was added or retired
CLIENTS: Final = "clients"  # a dynamic client was registered, replaced or deleted (RFC 7591/7592)
CHAIN: Final = "chain"  # "chain:<chain_id>:<address>": a chain event changed an account's standing
RECONNECT_SECONDS: Final = 1.0

Handler = Callable[[str], Awaitable[None]]  # receives the payload after the topic ("" for keys/clients)

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


async def announce(conn: AsyncConnection, topic: str, detail: str = "") -> None:
    """Tell the other processes, at this transaction's COMMIT, that ``topic`` changed."""
    if conn.dialect.name != "postgresql":
        return
    payload = f"{topic}:{detail}" if detail else topic
    await conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})


def chain_detail(chain_id: int, address: str) -> str:
    return f"{chain_id}:{address.lower()}"


def listener_dsn(database_url: str) -> str | None:
    """The asyncpg DSN to LISTEN on, or None when the database has no notifications (SQLite)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class ChangeListener:
    """One LISTEN connection per process, dispatching each notification to its topic's handler."""

    def __init__(self, dsn: str, handlers: Mapping[str, Handler], connect_timeout: float = 5.0) -> None:
        self._dsn = dsn
        self._handlers = dict(handlers)
        self._connect_timeout = connect_timeout
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self.connected = asyncio.Event()  # set while LISTENing (tests wait on it)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until ``stop``; reconnect after a lost connection, re-reading everything each time."""
        while not stop.is_set():
            try:
                await self._listen_once(stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: retry; the periodic re-read still runs
                log.warning("change listener disconnected (%s); reconnecting", type(exc).__name__)
            self.connected.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RECONNECT_SECONDS)

    async def _listen_once(self, stop: asyncio.Event) -> None:
        import asyncpg

        conn: Any = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._received)
            self.connected.set()
            await self._reread_all()  # anything that changed while this process was not listening
            while not stop.is_set() and not lost.is_set():
                try:
                    payload = await asyncio.wait_for(self._queue.get(), 1.0)
                except TimeoutError:
                    if conn.is_closed():
                        lost.set()
                    continue
                await self._dispatch(payload)
            if lost.is_set():
                raise ConnectionError("the LISTEN connection closed")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)

    def _received(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._queue.put_nowait(payload)

    async def _dispatch(self, payload: str) -> None:
        topic, _, detail = payload.partition(":")
        handler = self._handlers.get(topic)
        if handler is None:
            return
        try:
            await handler(detail)
        except Exception:  # one bad reload must not end the listener; the periodic re-read follows
            log.exception("change handler for %r failed", topic)

    async def _reread_all(self) -> None:
        for topic in self._handlers:
            await self._dispatch(topic)  # an empty detail: the handler re-reads all of its topic
