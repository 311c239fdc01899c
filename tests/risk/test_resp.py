"""app.risk.resp, the lean RESP2 client: the parser on split and odd input, URLs, and the client against
the machine's Redis (ordering under concurrency, errors, scripts, timeouts, lost connections)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from app.risk.resp import Endpoint, ProtocolError, RedisClient, ReplyError, Script, encode, parse, parse_url
from tests.risk.conftest import Relay, closed_port


def test_encode_bulk_strings() -> None:
    assert encode(("SET", b"k", 12, 1.5)) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$3\r\n1.5\r\n"
    assert encode(("GET", "ключ")) == b"*2\r\n$3\r\nGET\r\n$8\r\n" + "ключ".encode() + b"\r\n"


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (b"+OK\r\n", b"OK"),
        (b":-42\r\n", -42),
        (b"$5\r\nhe\r\no\r\n", b"he\r\no"),  # a bulk string may hold CRLF
        (b"$0\r\n\r\n", b""),
        (b"$-1\r\n", None),
        (b"*-1\r\n", None),
        (b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+x\r\n", [1, [b"a", None], b"x"]),
        (b"*0\r\n", []),
    ],
)
def test_parse_values_and_every_split_point(wire: bytes, value: object) -> None:
    assert parse(wire, 0) == (value, len(wire))
    for cut in range(len(wire)):
        assert parse(wire[:cut], 0) is None, cut  # incomplete: wait for more
    assert parse(b"junk" + wire + b"+next\r\n", 4) == (value, 4 + len(wire))


def test_parse_errors() -> None:
    parsed = parse(b"-NOSCRIPT No matching script.\r\n", 0)
    assert parsed is not None and isinstance(parsed[0], ReplyError) and parsed[0].code == "NOSCRIPT"
    with pytest.raises(ProtocolError):
        parse(b"?what\r\n", 0)
    with pytest.raises(ProtocolError):
        parse(b"$abc\r\n", 0)


def test_urls() -> None:
    assert parse_url("redis://127.0.0.1:6379/0") == Endpoint()
    assert parse_url("redis://redis.internal") == Endpoint(host="redis.internal")
    assert parse_url("rediss://u:p%40ss@r.example:6380/3") == Endpoint(
        host="r.example", port=6380, tls=True, username="u", password="p@ss", db=3
    )
    assert parse_url("redis://:secret@h/2") == Endpoint(host="h", password="secret", db=2)
    assert parse_url("unix:///run/redis.sock?db=4") == Endpoint(path="/run/redis.sock", db=4)
    for bad in ("http://h", "redis://", "redis://h/x"):
        with pytest.raises(ValueError):
            parse_url(bad)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RedisClient]:
    c = RedisClient(redis_url, timeout=1.0)
    yield c
    await c.close()


async def test_commands_and_concurrent_callers_get_their_own_replies(
    client: RedisClient, prefix: str
) -> None:
    assert await client.call("PING") == b"PONG"
    assert await client.call("SET", prefix + "k", "v") == b"OK"
    assert await client.call("GET", prefix + "k") == b"v"
    assert await client.call("GET", prefix + "missing") is None
    replies = await asyncio.gather(*(client.call("ECHO", str(i)) for i in range(300)))
    assert replies == [str(i).encode() for i in range(300)]
    assert await client.call("MGET", prefix + "k", prefix + "missing") == [b"v", None]


async def test_error_replies_raise_and_the_connection_stays_usable(client: RedisClient, prefix: str) -> None:
    await client.call("SET", prefix + "s", "text")
    with pytest.raises(ReplyError, match="WRONGTYPE"):
        await client.call("LPUSH", prefix + "s", "x")
    with pytest.raises(ReplyError, match="unknown command"):
        await client.call("NOSUCHCOMMAND")
    assert await client.call("PING") == b"PONG"


async def test_script_loads_itself_when_the_server_lacks_it(client: RedisClient, prefix: str) -> None:
    script = Script(client, f"-- {uuid.uuid4().hex}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert await script([prefix + "n"], [5]) == 5  # NOSCRIPT, then EVAL
    assert await script([prefix + "n"], [2]) == 7  # EVALSHA
    assert script.defer([prefix + "n"], [1])
    assert await client.call("GET", prefix + "n") == b"8"  # deferred before: written first, applied first


async def test_defer_needs_an_open_connection(redis_url: str) -> None:
    c = RedisClient(redis_url)
    try:
        assert not c.defer("PING")
        await c.call("PING")
        assert c.defer("PING")
    finally:
        await c.close()


async def test_a_deferred_command_goes_out_on_its_own_after_the_delay_or_at_close(
    redis_url: str, prefix: str
) -> None:
    c, watcher = RedisClient(redis_url, defer_seconds=0.05), RedisClient(redis_url)
    try:
        await c.call("PING")
        assert c.defer("SET", prefix + "late", "1")
        assert await watcher.call("GET", prefix + "late") is None  # held back: nothing was written yet
        await asyncio.sleep(0.2)
        assert await watcher.call("GET", prefix + "late") == b"1"  # the timer wrote it
        assert c.defer("SET", prefix + "closing", "1")
        await c.close()
        for _ in range(50):  # the close wrote it; Redis runs it once it reads the socket
            if await watcher.call("GET", prefix + "closing") == b"1":
                break
            await asyncio.sleep(0.01)
        assert await watcher.call("GET", prefix + "closing") == b"1"
    finally:
        await c.close()
        await watcher.close()


async def test_refused_connection_and_a_server_that_never_answers() -> None:
    c = RedisClient(f"redis://127.0.0.1:{closed_port()}/0")
    with pytest.raises(ConnectionRefusedError):
        await c.call("PING")

    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    stalled = RedisClient(f"redis://127.0.0.1:{port}/0", timeout=0.1)
    try:
        results = await asyncio.gather(*(stalled.call("PING") for _ in range(5)), return_exceptions=True)
        assert all(isinstance(r, TimeoutError) for r in results)
    finally:
        await stalled.close()
        silent.close()
        with contextlib.suppress(Exception):
            await silent.wait_closed()


async def test_lost_connection_fails_in_flight_calls_and_the_next_call_reconnects(relay: Relay) -> None:
    c = RedisClient(relay.url)
    try:
        assert await c.call("PING") == b"PONG"
        blocked = asyncio.ensure_future(c.call("BLPOP", f"portcullis-test:{uuid.uuid4().hex}", 5))
        await asyncio.sleep(0.05)
        await relay.stop()
        with pytest.raises(ConnectionError):
            await blocked
        with pytest.raises(ConnectionRefusedError):
            await c.call("PING")
        await relay.start()
        assert await c.call("PING") == b"PONG"
    finally:
        await c.close()


async def test_handshake_errors_surface(redis_url: str) -> None:
    # this test server has no password: AUTH is refused, and the call says so
    c = RedisClient(redis_url.replace("redis://", "redis://:wrong@"))
    try:
        with pytest.raises(ReplyError, match=r"(?i)auth|password"):
            await c.call("PING")
    finally:
        await c.close()


async def test_select_database_from_the_url(redis_url: str, prefix: str) -> None:
    base = redis_url.rsplit("/", 1)[0]
    db0, db1 = RedisClient(base + "/0"), RedisClient(base + "/1")
    try:
        await db1.call("SET", prefix + "where", "one", "PX", 10_000)
        assert await db0.call("GET", prefix + "where") is None
        assert await db1.call("GET", prefix + "where") == b"one"
        await db1.call("DEL", prefix + "where")
    finally:
        await db0.close()
        await db1.close()
