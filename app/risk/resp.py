"""A lean Redis client: RESP2 (the Redis serialization protocol) pipelined over one connection.

Why not redis-py: the guard makes a Redis call on each request it admits, so each call's client cost
counts. Measured on the project machine under uvloop (docs/RATE_LIMITS.md), an EVALSHA of a four-key
script took about 75 us through ``redis.asyncio`` (pool), 56 us on its bare connection and 31 us here.
What this client does: ``redis://``, ``rediss://`` (TLS, system CAs) and
``unix://`` URLs with user, password and database; commands pipelined over one connection (replies
come back in order, so concurrent callers share it without a lock); commands whose reply nobody waits
for, deferred onto the next command's write; a per-call timeout; reconnect on the next call after any
failure. Not supported: Sentinel, Cluster, RESP3, pub/sub, MULTI.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from dataclasses import dataclass
from typing import TypeAlias, cast
from urllib.parse import parse_qs, unquote, urlsplit

Reply: TypeAlias = "bytes | int | ReplyError | list[Reply] | None"
Arg: TypeAlias = bytes | str | int | float


class ReplyError(Exception):
    """The server answered with an error reply (``-ERR ...``, ``-NOSCRIPT ...``)."""

    @property
    def code(self) -> str:
        return str(self).split(" ", 1)[0]


class ProtocolError(ConnectionError):
    """The byte stream is not RESP2: the connection is dropped."""


@dataclass(frozen=True)
class Endpoint:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a Unix socket
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0


def parse_url(url: str) -> Endpoint:
    """``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS), ``unix:///path[?db=N]``."""
    parts = urlsplit(url)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if parts.scheme == "unix":
        db = parse_qs(parts.query).get("db", ["0"])[0]
        return Endpoint(path=parts.path, username=user, password=password, db=int(db))
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError("a Redis URL is redis://host[:port][/db], rediss://... or unix:///path")
    db = parts.path.strip("/") or "0"
    return Endpoint(
        host=parts.hostname,
        port=parts.port or 6379,
        tls=parts.scheme == "rediss",
        username=user,
        password=password,
        db=int(db),
    )


def expect_bytes(reply: Reply) -> bytes:
    if not isinstance(reply, bytes):
        raise ProtocolError(f"expected a string reply, got {type(reply).__name__}")
    return reply


def expect_list(reply: Reply) -> list[Reply]:
    if not isinstance(reply, list):
        raise ProtocolError(f"expected an array reply, got {type(reply).__name__}")
    return reply


def encode(args: tuple[Arg, ...]) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int):
            data = b"%d" % arg
        else:
            data = repr(arg).encode()
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


def parse(buf: bytearray | bytes, pos: int) -> tuple[Reply, int] | None:
    """One RESP2 value at ``pos``: (value, position after it), or None when ``buf`` holds only part of it."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, line, after = buf[pos], buf[pos + 1 : end], end + 2
    if kind == 0x2B:  # + simple string
        return bytes(line), after
    if kind == 0x2D:  # - error
        return ReplyError(line.decode("utf-8", "replace")), after
    try:
        number = int(line)
    except ValueError:
        raise ProtocolError(f"not a RESP2 length or integer: {bytes(line[:40])!r}") from None
    if kind == 0x3A:  # : integer
        return number, after
    if kind == 0x24:  # $ bulk string
        if number < 0:
            return None, after
        if len(buf) < after + number + 2:
            return None
        return bytes(buf[after : after + number]), after + number + 2
    if kind == 0x2A:  # * array
        if number < 0:
            return None, after
        items: list[Reply] = []
        for _ in range(number):
            parsed = parse(buf, after)
            if parsed is None:
                return None
            item, after = parsed
            items.append(item)
        return items, after
    raise ProtocolError(f"unknown RESP2 type byte {kind!r}")


class _Pipe(asyncio.Protocol):
    """One connection: requests go out as they come, replies resolve the waiting futures in order."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self.waiters: deque[asyncio.Future[Reply]] = deque()
        self.buffer = bytearray()
        self.closed = False
        self.held: list[bytes] = []  # deferred commands, not written yet (their waiters are queued)
        self.flush_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # a stream transport: TCP, TLS or Unix

    def send(self, payload: bytes) -> asyncio.Future[Reply]:
        assert self.transport is not None
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        if self.held:  # deferred commands go first, in the same write
            self.held.append(payload)
            self.flush()
        else:
            self.transport.write(payload)
        return waiter

    def hold(self, payload: bytes, delay: float) -> asyncio.Future[Reply]:
        """Queue a command to go out with the next ``send``, or after ``delay`` seconds at the latest."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Reply] = loop.create_future()
        self.waiters.append(waiter)
        self.held.append(payload)
        if self.flush_timer is None:
            self.flush_timer = loop.call_later(delay, self.flush)
        return waiter

    def flush(self) -> None:
        if self.flush_timer is not None:
            self.flush_timer.cancel()
            self.flush_timer = None
        if self.held and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.held))
        self.held.clear()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        pos = 0
        try:
            while self.waiters and (parsed := parse(self.buffer, pos)) is not None:
                value, pos = parsed
                waiter = self.waiters.popleft()
                if not waiter.done():  # a caller that timed out or was cancelled: drop its reply
                    waiter.set_result(value)
        except ProtocolError as exc:
            self.abort(exc)
            return
        del self.buffer[:pos]
        if self.buffer and not self.waiters:
            self.abort(ProtocolError("Redis sent a reply nobody asked for"))

    def abort(self, exc: BaseException) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"the connection to Redis was lost: {exc!r}"))

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        self.flush()  # nothing held is written any more: the connection is gone
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)


class RedisClient:
    """Commands to one Redis server. Failures raise OSError (ConnectionError, TimeoutError) or ReplyError."""

    def __init__(self, url: str, *, timeout: float = 0.25, defer_seconds: float = 0.5) -> None:
        self.endpoint = parse_url(url)
        self._timeout = timeout
        self.defer_seconds = defer_seconds
        self._pipe: _Pipe | None = None
        self._opening: asyncio.Future[_Pipe] | None = None

    async def call(self, *args: Arg) -> Reply:
        pipe = self._pipe
        if pipe is None or pipe.closed:
            pipe = await self._connect()
        reply = await self._await(pipe, pipe.send(encode(args)))
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def defer(self, *args: Arg) -> bool:
        """Send a command without waiting for its reply (dropped on arrival, errors included), written
        together with this client's next command or after ``defer_seconds`` at the latest: one write and
        one read fewer than a command of its own.

        Commands on one connection run in order, so whatever this client sends later sees its effect.
        False, and nothing sent, when no connection is open: the caller then uses ``call``.
        """
        pipe = self._pipe
        if pipe is None or pipe.closed:
            return False
        pipe.hold(encode(args), self.defer_seconds).add_done_callback(_ignore)
        return True

    async def close(self) -> None:
        if self._pipe is not None and self._pipe.transport is not None:
            self._pipe.flush()  # deferred commands still go out before the connection closes
            self._pipe.transport.close()
        self._pipe = None

    async def _await(self, pipe: _Pipe, waiter: asyncio.Future[Reply]) -> Reply:
        # A timer rather than asyncio.timeout(): a third of the cost on the hot path. A late reply means
        # a stalled server or network; the connection is dropped and the next call starts afresh.
        timer = asyncio.get_running_loop().call_later(self._timeout, self._expire, pipe, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def _expire(self, pipe: _Pipe, waiter: asyncio.Future[Reply]) -> None:
        if not waiter.done():
            pipe.abort(TimeoutError(f"Redis did not answer within {self._timeout} s"))

    async def _connect(self) -> _Pipe:
        # Concurrent callers share one attempt: with Redis unreachable, a hundred waiting requests must
        # see one connect timeout, not a hundred in a row.
        if self._opening is None or self._opening.done():
            self._opening = asyncio.ensure_future(self._open())
        return await asyncio.shield(self._opening)

    async def _open(self) -> _Pipe:
        loop = asyncio.get_running_loop()
        e = self.endpoint
        if e.path is not None:
            connecting = loop.create_unix_connection(_Pipe, e.path)
        else:
            context = ssl.create_default_context() if e.tls else None
            connecting = loop.create_connection(_Pipe, e.host, e.port, ssl=context)
        _, pipe = await asyncio.wait_for(connecting, self._timeout)
        try:
            if e.password is not None:
                auth: tuple[Arg, ...] = (e.username, e.password) if e.username else (e.password,)
                await self._checked(pipe, "AUTH", *auth)
            if e.db:
                await self._checked(pipe, "SELECT", e.db)
        except BaseException:
            pipe.abort(ConnectionError("Redis handshake failed"))
            raise
        self._pipe = pipe
        return pipe

    async def _checked(self, pipe: _Pipe, *args: Arg) -> None:
        reply = await self._await(pipe, pipe.send(encode(args)))
        if isinstance(reply, ReplyError):
            raise reply


def _ignore(waiter: asyncio.Future[Reply]) -> None:
    if not waiter.cancelled():
        waiter.exception()  # retrieved, so asyncio does not report it as never retrieved


class Script:
    """A Lua script run by EVALSHA, sent in full (EVAL) only when the server does not have it cached."""

    def __init__(self, client: RedisClient, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: list[str], args: list[Arg]) -> Reply:
        try:
            return await self.client.call("EVALSHA", self.sha, len(keys), *keys, *args)
        except ReplyError as exc:
            if exc.code != "NOSCRIPT":
                raise
            return await self.client.call("EVAL", self.source, len(keys), *keys, *args)

    def defer(self, keys: list[str], args: list[Arg]) -> bool:
        """EVALSHA without waiting (see ``RedisClient.defer``); a server without the script drops it."""
        return self.client.defer("EVALSHA", self.sha, len(keys), *keys, *args)
