"""Redis for the risk tests: the machine's server at 127.0.0.1:6379, a fresh key prefix per test, and a
TCP relay in front of it that a test can cut to take 'Redis' down (and bring back) mid-test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from app.storage.redis import FAILURES, client_options

REDIS_ENV = "PORTCULLIS_TEST_REDIS_URL"
REDIS_URL = os.environ.get(REDIS_ENV) or "redis://127.0.0.1:6379/0"
CLEAN_LUA = """
local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do redis.call('DEL', key) end
until cursor == '0'
"""


def quick_client(url: str) -> Redis:
    return Redis.from_url(url, **client_options(0.5))


async def answering_redis() -> str:
    """The test Redis URL; skips the test when nothing answers there."""
    client = quick_client(REDIS_URL)
    try:
        await client.ping()
    except FAILURES as exc:
        pytest.skip(
            f"Redis at {REDIS_URL} does not answer ({exc.__class__.__name__}): "
            f"these tests need a Redis server ({REDIS_ENV} points elsewhere)"
        )
    finally:
        await client.aclose()
    return REDIS_URL


@contextlib.asynccontextmanager
async def redis_namespace() -> AsyncIterator[tuple[str, str]]:
    """(url, key prefix no other test uses); every key under the prefix is deleted afterwards."""
    url = await answering_redis()
    value = f"portcullis-test:{uuid.uuid4().hex}:"
    try:
        yield url, value
    finally:
        client = quick_client(url)
        try:
            await client.eval(CLEAN_LUA, 0, value + "*")
        finally:
            await client.aclose()


@pytest.fixture
async def redis_url() -> str:
    return await answering_redis()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with redis_namespace() as (_, value):
        yield value


def closed_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Relay:
    """A TCP relay to Redis. ``stop`` closes the listener and every relayed connection: Redis is down."""

    def __init__(self, upstream: tuple[str, int], db: int = 0) -> None:
        self.upstream = upstream
        self.db = db
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.db}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def relay(redis_url: str) -> AsyncIterator[Relay]:
    parts = urlsplit(redis_url)
    proxy = Relay((parts.hostname or "127.0.0.1", parts.port or 6379), int(parts.path.strip("/") or 0))
    await proxy.start()
    yield proxy
    if proxy._server is not None:
        await proxy.stop()
