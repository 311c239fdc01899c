"""Redis through redis-py's asyncio client, built once from Settings: TLS, AUTH, Sentinel, timeouts.

One client per app (its own connection pool), made here and nowhere else: ``redis://`` or ``rediss://``
(TLS; ``redis_tls_ca_file`` to trust a private CA, ``redis_tls_cert_file`` / ``redis_tls_key_file`` for
a client certificate), AUTH from the URL's user and password or ``redis_password`` (a secret, never
logged), and Sentinel when ``redis_sentinels`` lists sentinels: the master named ``redis_sentinel_master``
is asked of them and followed across a failover (the URL then gives only scheme, credentials and db).
Every socket operation gives up after ``redis_socket_timeout`` seconds, so a dead Redis costs a request
a fraction of a second, never a hang.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from app.settings import Settings

# Every failure of a Redis call: refused, reset or timed-out connections, TLS errors (OSError), and the
# server refusing work (OOM, LOADING, READONLY after a failover, NOAUTH): redis-py raises RedisError
# subclasses for its own, OSError can still escape from the socket layer.
FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError)


class RedisConfigError(RuntimeError):
    """Redis refused our credentials (or the settings name no usable server): start-up must stop."""


def client_options(timeout: float) -> dict[str, Any]:
    """Options every client of ours gets: ``timeout`` on connect and on each reply, and no retries (a
    retry would multiply what a dead Redis costs each request; the caller's fallback and circuit breaker,
    app.risk.redis_backend, handle failures instead)."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }


def _ssl_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_check_hostname": True}
    if settings.redis_tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    if settings.redis_tls_cert_file is not None:
        options["ssl_certfile"] = str(settings.redis_tls_cert_file)
        options["ssl_keyfile"] = str(settings.redis_tls_key_file or settings.redis_tls_cert_file)
    return options


def build_redis(settings: Settings) -> Redis:
    """The app's Redis client (``settings.redis_url`` must be set). Connects lazily, on the first call."""
    url = settings.redis_url
    if not url:
        raise ValueError("redis_url is not set")
    parts = urlsplit(url)
    tls = parts.scheme == "rediss"
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    common = client_options(settings.redis_socket_timeout)
    if settings.redis_sentinels:
        db = int(parts.path.strip("/") or "0")
        auth: dict[str, Any] = {
            "username": unquote(parts.username) if parts.username else None,
            "password": password or (unquote(parts.password) if parts.password else None),
        }
        node = {**common, **auth, "db": db, **({"ssl": True, **_ssl_options(settings)} if tls else {})}
        sentinels = [_host_port(s) for s in settings.redis_sentinels]
        # Sentinels themselves are usually run without AUTH and TLS on a private network; the same
        # timeouts apply so a dead sentinel is skipped quickly.
        sentinel = Sentinel(sentinels, sentinel_kwargs=client_options(settings.redis_socket_timeout), **node)
        master: Redis = sentinel.master_for(settings.redis_sentinel_master or "", **node)
        return master
    extra: dict[str, Any] = dict(common)
    if password is not None:
        extra["password"] = password
    if tls:
        extra.update(_ssl_options(settings))
    client: Redis = Redis.from_url(url, **extra)
    return client


async def close_redis(client: Redis) -> None:
    """Close ``client``'s pool and, behind Sentinel, the connections to the sentinels too."""
    await client.aclose()
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


async def check_credentials(client: Redis) -> None:
    """Start-up check: a PING. Wrong credentials raise RedisConfigError naming the settings (never their
    values); Redis merely down is not an error here: /ready reports it and the limiter falls back."""
    try:
        await client.ping()
    except AuthenticationError as exc:
        raise RedisConfigError(
            "Redis refused the credentials (the user and password of PORTCULLIS_REDIS_URL, or "
            f"PORTCULLIS_REDIS_PASSWORD): {exc.__class__.__name__}"
        ) from None
    except ResponseError as exc:
        if str(exc).startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
            raise RedisConfigError(
                "Redis refused the credentials (the user and password of PORTCULLIS_REDIS_URL, or "
                f"PORTCULLIS_REDIS_PASSWORD): {str(exc).split(' ', 1)[0]}"
            ) from None
    except FAILURES:
        return
