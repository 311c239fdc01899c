"""A TCP proxy of the tests' own that breaks the link to a dependency on demand (for fault tests).

Modes, switched at any time with ``proxy.mode = ...``:

- ``pass``: bytes flow both ways.
- ``refuse``: the server is gone: open connections are cut and new ones closed at once.
- ``drop``: new connections are accepted and nothing is ever forwarded (a black hole: packets dropped),
  and every open connection stops forwarding too. A connection that has been black-holed stays so for
  life, as a stream that lost bytes cannot be resumed: the client must give up on it.
- ``slow``: bytes flow, each chunk held back ``delay`` seconds.

It listens on a free loopback port of its own; ``port`` says which.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Mode = Literal["pass", "refuse", "drop", "slow"]
CHUNK = 65536


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``target_host``:``target_port`` according to ``mode``."""

    def __init__(self, target_host: str, target_port: int, *, delay: float = 1.0) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self._mode: Mode = "pass"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._links):
            task.cancel()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._links):
            with contextlib.suppress(BaseException):
                await task
        await self._server.wait_closed()

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        self._mode = mode
        if mode == "refuse":
            for writer in list(self._writers):
                writer.transport.abort()

    def _track(self, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track(writer)
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._links.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            return
        if self.mode == "drop":
            await _swallow(reader)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            return
        self._track(up_writer)
        holed = asyncio.Event()  # set once this link has been black-holed: it never forwards again
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer, holed)),
            asyncio.ensure_future(self._pipe(up_reader, writer, holed)),
        ]
        try:  # either side hanging up ends the link (the other side's bytes have nowhere to go)
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            self._writers.discard(up_writer)
            up_writer.transport.abort()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, holed: asyncio.Event) -> None:
        while True:
            data = await src.read(CHUNK)
            if not data:
                return
            if self.mode == "drop":
                holed.set()
            if holed.is_set():
                continue  # read and discarded: the peer sees silence
            if self.mode == "slow":
                await asyncio.sleep(self.delay)
            dst.write(data)
            await dst.drain()


async def _swallow(reader: asyncio.StreamReader) -> None:
    """Read and discard until the client hangs up; it never hears a word."""
    while await reader.read(CHUNK):
        pass
