"""RFC 7591 section 2 ``jwks_uri``: a private_key_jwt client's public keys fetched from its URI, cached.

``HttpJwksFetcher`` does the I/O: one GET, https only (http on a loopback host in development mode only), no
redirects, no proxy from the environment, 5 seconds in all, at most 64 KiB, a JSON JWK set checked exactly
like an inline ``jwks`` (keys marked ``"use": "enc"`` are dropped first: they are the client's encryption
keys, not signing keys). ``CachedClientKeys`` decides when to fetch: per client, the set is kept for
``ttl``; a ``kid`` not in it (the client rotated its keys, OpenID Connect Core 1.0 section 10.1.1) causes a
refetch, but no client's URI is fetched more often than once per ``min_refetch``, whatever arrives, so
assertions naming made-up kids cannot make us hammer the URI. Concurrent requests for one client share one
fetch. A set that cannot be had is ``invalid_client``; a failed refetch keeps a set still inside its ttl.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from app.clock import Clock
from app.errors import InvalidClient
from app.json_depth import json_depth_ok
from app.oauth.clients import Client, check_jwk_set, check_jwks_uri

MAX_JWKS_BYTES = 64 * 1024
FETCH_TIMEOUT_SECONDS = 5.0
DEFAULT_TTL = timedelta(minutes=10)
DEFAULT_MIN_REFETCH = timedelta(seconds=30)


class JwksUnavailable(Exception):
    """The JWK set at a ``jwks_uri`` could not be fetched or is not acceptable; the message says why."""


class JwksFetcher(Protocol):
    async def fetch(self, uri: str) -> dict[str, Any]:
        """The JWK set at ``uri``, checked as an inline ``jwks`` is; raises :class:`JwksUnavailable`."""
        ...


class HttpJwksFetcher:
    """Fetches a JWK set with httpx. A fresh client per fetch: fetches are rare (see CachedClientKeys)."""

    def __init__(
        self,
        *,
        allow_loopback_http: bool = False,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        max_bytes: int = MAX_JWKS_BYTES,
    ) -> None:
        self._allow_loopback_http = allow_loopback_http
        self._timeout = timeout
        self._max_bytes = max_bytes

    async def fetch(self, uri: str) -> dict[str, Any]:
        self._check_uri(uri)
        try:
            async with asyncio.timeout(self._timeout):
                raw = await self._get(uri)
        except TimeoutError:
            raise JwksUnavailable(f"no complete answer within {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise JwksUnavailable(f"request failed: {exc.__class__.__name__}") from None
        return parse_jwk_set(raw)

    def _check_uri(self, uri: str) -> None:
        try:
            check_jwks_uri(uri)
        except ValueError as exc:
            raise JwksUnavailable(str(exc)) from None
        # check_jwks_uri lets http through on loopback hosts only.
        if urlsplit(uri).scheme == "http" and not self._allow_loopback_http:
            raise JwksUnavailable("jwks_uri must use https (http on a loopback host in development only)")

    async def _get(self, uri: str) -> bytes:
        headers = {"Accept": "application/jwk-set+json, application/json"}
        # trust_env=False: no proxy or .netrc from the environment (settings are the only configuration).
        async with (
            httpx.AsyncClient(timeout=self._timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("GET", uri, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise JwksUnavailable(f"HTTP status {response.status_code} (redirects are not followed)")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_bytes:
                raise JwksUnavailable(f"document larger than {self._max_bytes} bytes")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self._max_bytes:
                    raise JwksUnavailable(f"document larger than {self._max_bytes} bytes")
        return bytes(body)


def parse_jwk_set(raw: bytes) -> dict[str, Any]:
    """A fetched JWK set: JSON, shallow, its signing keys checked as ``Client.jwks`` checks inline keys."""
    if not json_depth_ok(raw):
        raise JwksUnavailable("document nests too deeply")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise JwksUnavailable("document is not JSON") from None
    if isinstance(document, dict) and isinstance(document.get("keys"), list):
        signing = [k for k in document["keys"] if not (isinstance(k, dict) and k.get("use") == "enc")]
        document = {**document, "keys": signing}
    try:
        return check_jwk_set(document)
    except ValueError as exc:
        raise JwksUnavailable(f"not an acceptable JWK set: {exc}") from None


@dataclass(frozen=True, slots=True)
class _Entry:
    uri: str
    keys: tuple[Mapping[str, Any], ...] | None  # None: never fetched successfully, or expired and unfetchable
    fetched_at: datetime | None
    attempted_at: datetime
    failure: str | None = None


class CachedClientKeys:
    """Implements app.oauth.client_auth.ClientKeys over a :class:`JwksFetcher`; one per app."""

    def __init__(
        self,
        fetcher: JwksFetcher,
        clock: Clock,
        *,
        ttl: timedelta = DEFAULT_TTL,
        min_refetch: timedelta = DEFAULT_MIN_REFETCH,
    ) -> None:
        self._fetcher = fetcher
        self._clock = clock
        self._ttl = ttl
        self._min_refetch = min_refetch
        # One entry and one lock per registered client with a jwks_uri: bounded by the registry.
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def keys(self, client: Client, kid: str) -> Sequence[Mapping[str, Any]]:
        uri = client.jwks_uri
        if uri is None:
            raise InvalidClient("this client has no jwks_uri", debug=f"client {client.client_id!r}")
        lock = self._locks.setdefault(client.client_id, asyncio.Lock())
        async with lock:  # one fetch at a time per client; the waiters then find the fresh entry
            entry = self._entries.get(client.client_id)
            if entry is not None and entry.uri != uri:
                entry = None
            now = self._clock.now()
            if self._should_fetch(entry, kid, now):
                entry = await self._fetch(client.client_id, uri, entry, now)
        if entry is None or entry.keys is None:
            reason = entry.failure if entry is not None else "not fetched"
            raise InvalidClient(
                "the client's jwks_uri could not be fetched", debug=f"client {client.client_id!r}: {reason}"
            )
        return entry.keys

    def _fresh(self, entry: _Entry, now: datetime) -> bool:
        return entry.keys is not None and entry.fetched_at is not None and now - entry.fetched_at < self._ttl

    def _should_fetch(self, entry: _Entry | None, kid: str, now: datetime) -> bool:
        if entry is None:
            return True
        if entry.keys is not None and not self._fresh(entry, now):
            return True  # the set has expired: at most once, as success renews it and failure drops it
        if now - entry.attempted_at < self._min_refetch:
            return False  # a failure or an unknown kid: not again so soon
        return entry.keys is None or all(k.get("kid") != kid for k in entry.keys)

    async def _fetch(self, client_id: str, uri: str, previous: _Entry | None, now: datetime) -> _Entry:
        try:
            document = await self._fetcher.fetch(uri)
        except JwksUnavailable as exc:
            if previous is not None and self._fresh(previous, now):
                # A rotation probe failed: the set fetched earlier still holds until its ttl ends, no longer.
                entry = replace(previous, attempted_at=now, failure=str(exc))
            else:
                entry = _Entry(uri=uri, keys=None, fetched_at=None, attempted_at=now, failure=str(exc))
        else:
            entry = _Entry(uri=uri, keys=tuple(document["keys"]), fetched_at=now, attempted_at=now)
        self._entries[client_id] = entry
        return entry
