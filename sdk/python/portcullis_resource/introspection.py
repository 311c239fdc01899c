"""RFC 7662 token introspection for revocation-sensitive routes (withdrawals): ask Portcullis whether a
token is still live, authenticating as a client (``client_secret_basic`` or RFC 7523 ``private_key_jwt``).

Only positive answers are cached, briefly (default 5 s, 0 disables): a revoked token is refused within that
time. Nothing negative is cached, and an unreachable or confused server fails the request closed (503).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from portcullis_resource.errors import InvalidToken, TemporarilyUnavailable


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """How this resource server authenticates at the introspection endpoint: ``secret`` (basic) or
    ``private_key`` (a ``cryptography`` private key or PEM, with its ``kid``) for ``private_key_jwt``."""

    client_id: str
    secret: str | None = None
    private_key: Any = None
    kid: str | None = None
    alg: str = "ES256"

    def __post_init__(self) -> None:
        if (self.secret is None) == (self.private_key is None):
            raise ValueError("ClientAuth needs exactly one of secret or private_key")

    def apply(self, form: dict[str, str], audience: str, now: float) -> httpx.BasicAuth | None:
        if self.secret is not None:
            return httpx.BasicAuth(self.client_id, self.secret)
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(16),
            "iat": int(now),
            "exp": int(now) + 60,
        }
        headers = {"kid": self.kid} if self.kid else None
        form["client_id"] = self.client_id
        form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        form["client_assertion"] = jwt.encode(claims, self.private_key, algorithm=self.alg, headers=headers)
        return None


@dataclass
class Introspector:
    endpoint: str
    issuer: str  # the private_key_jwt audience
    auth: ClientAuth
    http: httpx.AsyncClient
    clock: Callable[[], float]
    cache_seconds: float = 5.0
    requests: int = 0  # introspection calls made (observability and tests)
    _cache: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    async def check(self, token: str) -> dict[str, Any]:
        """The active answer for ``token``; InvalidToken if inactive, TemporarilyUnavailable if unknown."""
        now = self.clock()
        key = hashlib.sha256(token.encode()).hexdigest()
        held = self._cache.get(key)
        if held is not None and held[0] > now:
            return held[1]
        form = {"token": token, "token_type_hint": "access_token"}
        basic = self.auth.apply(form, self.issuer, now)
        self.requests += 1
        try:
            reply = await self.http.post(
                self.endpoint,
                data=form,
                auth=basic or httpx.USE_CLIENT_DEFAULT,
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError:
            raise TemporarilyUnavailable("the authorization server could not be asked") from None
        if reply.status_code != 200:
            raise TemporarilyUnavailable(f"token introspection answered {reply.status_code}")
        try:
            body = reply.json()
        except ValueError:
            raise TemporarilyUnavailable("token introspection did not answer JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
            raise TemporarilyUnavailable("token introspection did not say whether the token is active")
        if not body["active"]:
            self._cache.pop(key, None)
            raise InvalidToken("the token has been revoked or is no longer active")
        if self.cache_seconds > 0:
            if len(self._cache) > 100_000:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            self._cache[key] = (now + self.cache_seconds, body)
        return body
