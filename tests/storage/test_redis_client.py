"""app/storage/redis.py against real redis-server processes: AUTH, TLS (CA and client certificate),
Sentinel, and a server that never answers (the socket timeout bounds every call)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from app.storage.redis import FAILURES, RedisConfigError, build_redis, check_credentials, close_redis
from tests.conftest import FakeClock, make_settings, running_app
from tests.redis_server import RedisServer, write_tls_files

AUTH_PORT, TLS_PORT, MASTER_PORT, SENTINEL_PORT, SILENT_PORT = 18201, 18202, 18203, 18204, 18206
PASSWORD = "correct-horse-battery-staple"


async def test_auth_with_the_password_in_a_secret_setting_or_the_url(tmp_path: Path) -> None:
    with RedisServer(AUTH_PORT, "--requirepass", PASSWORD):
        by_setting = build_redis(
            make_settings(tmp_path, redis_url=f"redis://127.0.0.1:{AUTH_PORT}/5", redis_password=PASSWORD)
        )
        by_url = build_redis(
            make_settings(tmp_path, redis_url=f"redis://:{PASSWORD}@127.0.0.1:{AUTH_PORT}/5")
        )
        anonymous = build_redis(make_settings(tmp_path, redis_url=f"redis://127.0.0.1:{AUTH_PORT}/5"))
        try:
            await by_setting.set("portcullis-test:auth", b"1", px=5000)
            assert await by_url.get("portcullis-test:auth") == b"1"
            await check_credentials(by_setting)
            with pytest.raises(RedisConfigError, match="refused the credentials"):
                await check_credentials(anonymous)  # NOAUTH
        finally:
            for client in (by_setting, by_url, anonymous):
                await client.aclose()


async def test_a_wrong_password_stops_start_up_naming_the_setting_not_the_password(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with RedisServer(AUTH_PORT, "--requirepass", PASSWORD):
        settings = make_settings(
            tmp_path,
            database_url=sqlite_url,
            rate_limits=True,
            redis_url=f"redis://127.0.0.1:{AUTH_PORT}/5",
            redis_password="wrong-password-42",
        )
        with pytest.raises(RedisConfigError) as refused:
            async with running_app(settings, FakeClock()):
                pass
    assert "PORTCULLIS_REDIS_PASSWORD" in str(refused.value)
    assert "wrong-password-42" not in str(refused.value) and "wrong-password-42" not in caplog.text


async def test_tls_with_a_private_ca_and_a_client_certificate(tmp_path: Path) -> None:
    tls = write_tls_files(tmp_path)
    server = RedisServer(
        TLS_PORT,
        "--port", "0",
        "--tls-port", str(TLS_PORT),
        "--tls-cert-file", str(tls["server_cert"]),
        "--tls-key-file", str(tls["server_key"]),
        "--tls-ca-cert-file", str(tls["ca"]),
        "--tls-auth-clients", "yes",
    )  # fmt: skip
    try:
        server.__enter__()
    except RuntimeError as exc:
        if "tls" in str(exc).lower():
            pytest.skip(f"this redis-server has no TLS support: {exc}")
        raise
    url = f"rediss://127.0.0.1:{TLS_PORT}/5"
    try:
        trusted = build_redis(
            make_settings(
                tmp_path,
                redis_url=url,
                redis_tls_ca_file=tls["ca"],
                redis_tls_cert_file=tls["client_cert"],
                redis_tls_key_file=tls["client_key"],
            )
        )
        # The system CAs do not know our CA: the server's certificate is refused.
        untrusted = build_redis(make_settings(tmp_path, redis_url=url))
        # Our CA, but no client certificate: the server refuses us (tls-auth-clients yes).
        no_client_cert = build_redis(make_settings(tmp_path, redis_url=url, redis_tls_ca_file=tls["ca"]))
        try:
            assert await trusted.ping() is True
            await trusted.set("portcullis-test:tls", b"over TLS", px=5000)
            assert await trusted.get("portcullis-test:tls") == b"over TLS"
            with pytest.raises(FAILURES):
                await untrusted.ping()
            with pytest.raises(FAILURES):
                await no_client_cert.ping()
            plain = build_redis(make_settings(tmp_path, redis_url=f"redis://127.0.0.1:{TLS_PORT}/5"))
            with pytest.raises(FAILURES):
                await plain.ping()  # plaintext to a TLS port
            await plain.aclose()
        finally:
            for client in (trusted, untrusted, no_client_cert):
                await client.aclose()
    finally:
        server.__exit__(None, None, None)


async def test_sentinel_finds_the_master(tmp_path: Path) -> None:
    with (
        RedisServer(MASTER_PORT),
        RedisServer(
            SENTINEL_PORT,
            "--sentinel",
            "monitor",
            "portcullis-master",
            "127.0.0.1",
            str(MASTER_PORT),
            "1",
            sentinel=True,
        ) as sentinel,  # fmt: skip
    ):
        settings = make_settings(
            tmp_path,
            redis_url="redis:///5",
            redis_sentinels=[f"127.0.0.1:{SENTINEL_PORT}"],
            redis_sentinel_master="portcullis-master",
        )
        client = build_redis(settings)
        try:
            deadline = time.monotonic() + 10
            while True:  # the sentinel learns of the master on its first look
                try:
                    await client.set("portcullis-test:sentinel", b"via sentinel", px=5000)
                    break
                except FAILURES:
                    if time.monotonic() > deadline:
                        raise AssertionError(sentinel.output()) from None
                    await asyncio.sleep(0.2)
            direct = build_redis(make_settings(tmp_path, redis_url=f"redis://127.0.0.1:{MASTER_PORT}/5"))
            assert await direct.get("portcullis-test:sentinel") == b"via sentinel"
            await direct.aclose()
        finally:
            await close_redis(client)


def test_sentinel_settings_are_checked_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PORTCULLIS_REDIS_SENTINEL_MASTER: required"):
        make_settings(tmp_path, redis_url="redis:///0", redis_sentinels=["127.0.0.1:26379"])
    with pytest.raises(ValueError, match="is not host:port"):
        make_settings(
            tmp_path, redis_url="redis:///0", redis_sentinels=["nowhere"], redis_sentinel_master="m"
        )
    with pytest.raises(ValueError, match="PORTCULLIS_REDIS_URL"):
        make_settings(tmp_path, redis_url="http://127.0.0.1:6379")


async def test_a_server_that_never_answers_costs_one_socket_timeout(tmp_path: Path) -> None:
    accepted: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", SILENT_PORT)
    client = build_redis(
        make_settings(tmp_path, redis_url=f"redis://127.0.0.1:{SILENT_PORT}/5", redis_socket_timeout=0.3)
    )
    try:
        started = time.monotonic()
        with pytest.raises(FAILURES):
            await client.ping()
        assert time.monotonic() - started < 1.0  # one timeout, no retries
        with pytest.raises(RedisConnectionError):
            refused = build_redis(make_settings(tmp_path, redis_url="redis://127.0.0.1:18299/5"))
            try:
                await refused.ping()
            finally:
                await refused.aclose()
    finally:
        await client.aclose()
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()
