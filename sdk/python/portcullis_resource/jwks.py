"""OpenID Connect Discovery 1.0 and RFC 7517 key sets: the issuer's metadata once, its JWKS as cached.

The JWKS is kept as long as its response's ``Cache-Control: max-age`` says (default 5 minutes). A token
naming an unknown ``kid`` may trigger a refetch, at most one per ``refetch_interval`` (60 s): a flood of
random kids costs one request a minute, while a key rotated in on the server is found at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from portcullis_resource import jws
from portcullis_resource.errors import TemporarilyUnavailable

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,9})\"?\s*(?:,|$)", re.I)
_NO_CACHE = re.compile(r"(?:^|,)\s*(no-store|no-cache)\s*(?:,|$)", re.I)


def cache_seconds(cache_control: str | None, default: float) -> float:
    """How long a response may be kept, per its Cache-Control header (RFC 9111 section 5.2.2)."""
    if not cache_control:
        return default
    if _NO_CACHE.search(cache_control):
        return 0.0
    found = _MAX_AGE.search(cache_control)
    return float(found.group(1)) if found else default


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str | None
    alg: str
    key: jws.PublicKey
    check: jws.Verifier  # the signature check for (alg, key), built once when the set is fetched


@dataclass
class KeySet:
    """The issuer's keys behind a small cache. ``clock`` returns Unix seconds (injectable for tests)."""

    issuer: str
    http: httpx.AsyncClient
    clock: Callable[[], float]
    default_max_age: float = 300.0
    refetch_interval: float = 60.0
    metadata: dict[str, Any] | None = None
    fetches: int = 0  # JWKS requests made (observability and tests)
    _keys: dict[str, VerificationKey] = field(default_factory=dict)
    generation: int = 0  # bumped whenever the key set is replaced
    _fresh_until: float = float("-inf")
    _last_fetch: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def discover(self) -> dict[str, Any]:
        """The issuer's metadata, fetched once; its ``issuer`` must be ours exactly (Discovery 4.3)."""
        if self.metadata is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            meta = await self._get_json(url, "discovery")
            if meta.get("issuer") != self.issuer:
                raise TemporarilyUnavailable("the discovery document names another issuer")
            if not isinstance(meta.get("jwks_uri"), str):
                raise TemporarilyUnavailable("the discovery document has no jwks_uri")
            self.metadata = meta
        return self.metadata

    async def key(self, kid: str | None) -> VerificationKey | None:
        """The key for ``kid``: from the cache while it is fresh, else after one (rate-limited) refetch."""
        now = self.clock()
        if now >= self._fresh_until:
            await self._refresh(force=False)
        found = self._lookup(kid)
        if found is None and self.clock() - self._last_fetch >= self.refetch_interval:
            await self._refresh(force=True)
            found = self._lookup(kid)
        return found

    def fresh_key(self, kid: str | None) -> VerificationKey | None:
        """The key for ``kid`` when the cache is fresh and holds it, without awaiting (the common case);
        None means: ask :meth:`key`, which may fetch."""
        if self.metadata is None or self.clock() >= self._fresh_until:
            return None
        return self._lookup(kid)

    def algorithms(self) -> set[str]:
        """The algorithms the keys last fetched are for."""
        return {k.alg for k in self._keys.values()}

    def _lookup(self, kid: str | None) -> VerificationKey | None:
        if kid is not None:
            return self._keys.get(kid)
        # A token without a kid is accepted only when the set holds exactly one key.
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            now = self.clock()
            if not force and now < self._fresh_until:
                return  # another task refreshed while this one waited
            if force and now - self._last_fetch < self.refetch_interval:
                return
            meta = await self.discover()
            self._last_fetch = now
            self.fetches += 1
            try:
                reply = await self.http.get(meta["jwks_uri"], headers={"Accept": "application/json"})
            except httpx.HTTPError:
                raise TemporarilyUnavailable("the issuer's JWKS could not be fetched") from None
            body = _json(reply, "JWKS")
            keys: dict[str, VerificationKey] = {}
            for jwk in body.get("keys", []) if isinstance(body.get("keys"), list) else []:
                if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                    continue
                try:
                    alg, key = jws.key_from_jwk(jwk)
                    check = jws.verifier(alg, key)
                except jws.JwsError:
                    continue  # a key we cannot use is skipped, not fatal
                kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
                keys[kid or ""] = VerificationKey(kid, alg, key, check)
            self._keys = keys
            self.generation += 1  # what was derived from the old keys (advertised algorithms) is stale
            self._fresh_until = now + cache_seconds(reply.headers.get("cache-control"), self.default_max_age)

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            reply = await self.http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError:
            raise TemporarilyUnavailable(f"the issuer's {what} could not be fetched") from None
        return _json(reply, what)


def _json(reply: httpx.Response, what: str) -> dict[str, Any]:
    if reply.status_code != 200:
        raise TemporarilyUnavailable(f"the issuer's {what} answered {reply.status_code}")
    try:
        body = reply.json()
    except ValueError:
        raise TemporarilyUnavailable(f"the issuer's {what} is not JSON") from None
    if not isinstance(body, dict):
        raise TemporarilyUnavailable(f"the issuer's {what} is not a JSON object")
    return body
