"""RFC 6749 section 2.3 and RFC 7523 section 3 client authentication at the token endpoint.

Methods (OpenID Connect Core 1.0 section 9): ``client_secret_basic``, ``client_secret_post``,
``private_key_jwt`` and ``none``. Exactly one method per request, and it must be the client's registered
``token_endpoint_auth_method``. Client assertions follow the FAPI 2.0 Security Profile 5.3.2.1: the
``aud`` must be the issuer identifier as a string (the token endpoint URL is refused), algorithms
ES256, EdDSA or PS256 only, and every ``jti`` is single-use.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import unquote_plus

import jwt
from jwt import PyJWK
from jwt.exceptions import PyJWKError, PyJWTError

from app.clock import Clock
from app.errors import InvalidClient, InvalidRequest
from app.oauth.client_secrets import SecretVerifier
from app.oauth.clients import (
    ASSERTION_ALGS,
    AuthMethod,
    Client,
    ClientRegistry,
    unmatchable_hash,
    verify_client_secret,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=60)
MAX_ASSERTION_LENGTH = 8192
_KEY_FOR_ALG = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519"), "PS256": ("RSA", None)}
_FAILED = "client authentication failed"


class BasicAuthFailed(InvalidClient):
    """RFC 6749 section 5.2: a failed Basic attempt is answered with a matching WWW-Authenticate challenge."""

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="token", charset="UTF-8"'}


class AssertionJtiStore(Protocol):
    async def seen(self, client_id: str, jti: str, expires_at: datetime) -> bool:
        """Record ``jti`` for ``client_id`` until ``expires_at``; True if it was already recorded (a replay).

        Must be atomic: of two concurrent calls with the same pair, exactly one returns False.
        """
        ...


class ClientKeys(Protocol):
    async def keys(self, client: Client, kid: str) -> Sequence[Mapping[str, Any]]:
        """The public JWKs at ``client.jwks_uri`` (app.oauth.client_jwks), refetched when ``kid`` is new.

        Raises :class:`InvalidClient` when no acceptable key set can be had (never another exception).
        """
        ...


class MemoryAssertionJtiStore:
    """Single-process jti store: bounded, entries dropped once their assertion has expired.

    When full of unexpired entries it fails closed (reports every new jti as seen) rather than evicting an
    entry whose assertion could then be replayed. One process only: several workers need a shared store.
    """

    def __init__(self, clock: Clock, *, max_entries: int = 100_000) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[tuple[str, str], datetime] = {}

    async def seen(self, client_id: str, jti: str, expires_at: datetime) -> bool:
        # No await inside: atomic with respect to other coroutines on this event loop.
        key = (client_id, jti)
        now = self._clock.now()
        expiry = self._entries.get(key)
        if expiry is not None and expiry > now:
            return True
        if len(self._entries) >= self._max_entries:
            self._entries = {k: e for k, e in self._entries.items() if e > now}
            if len(self._entries) >= self._max_entries:
                return True
        self._entries[key] = expires_at
        return False

    def __len__(self) -> int:
        return len(self._entries)


async def authenticate(
    registry: ClientRegistry,
    *,
    authorization_header: str | None,
    form: Mapping[str, str],
    issuer: str,
    token_endpoint: str,
    now: datetime,
    jti_store: AssertionJtiStore,
    client_keys: ClientKeys | None = None,
    secret_verifier: SecretVerifier | None = None,
) -> Client:
    """The authenticated client, or :class:`InvalidClient` (:class:`InvalidRequest` for two methods).

    ``form`` must already be free of repeated parameters (RFC 6749 section 3.2: the HTTP face rejects them).
    ``client_keys`` supplies the keys of ``private_key_jwt`` clients registered with a ``jwks_uri``; without
    it such clients cannot authenticate. ``secret_verifier`` checks client secrets off the event loop and
    remembers recent successes (app.oauth.client_secrets); without it the scrypt runs inline.
    """
    method = _method(authorization_header, form)
    if method == "client_secret_basic":
        assert authorization_header is not None
        client_id, secret = _basic_credentials(authorization_header)
        _check_body_client_id(form, client_id)
        return await _check_secret(registry, client_id, secret, method, BasicAuthFailed, secret_verifier)
    if method == "client_secret_post":
        client_id, secret = _check_post(form)
        return await _check_secret(registry, client_id, secret, method, InvalidClient, secret_verifier)
    if method == "private_key_jwt":
        return await _check_assertion(registry, form, issuer, token_endpoint, now, jti_store, client_keys)
    return _check_none(registry, form)


def _method(authorization_header: str | None, form: Mapping[str, str]) -> AuthMethod:
    """Which single method the request uses (RFC 6749 2.3: a client MUST NOT use more than one)."""
    if authorization_header is not None and authorization_header.split(" ", 1)[0].lower() != "basic":
        raise InvalidClient("the Authorization header at this endpoint must use the Basic scheme")
    used: list[AuthMethod] = []
    if authorization_header is not None:
        used.append("client_secret_basic")
    if "client_secret" in form:
        used.append("client_secret_post")
    if "client_assertion" in form or "client_assertion_type" in form:
        used.append("private_key_jwt")
    if len(used) > 1:
        raise InvalidRequest(f"use exactly one client authentication method, not {' and '.join(used)}")
    return used[0] if used else "none"


def _registered(registry: ClientRegistry, client_id: str, method: AuthMethod) -> Client:
    """The client, if it is registered for ``method``; refused in the same words as an unknown one.

    RFC 6749 section 10.10: an answer that says "registered for another method" would list the clients.
    """
    client = registry.get(client_id)
    if client is None or client.token_endpoint_auth_method != method:
        raise InvalidClient(_FAILED, debug=_why_not(client, client_id, method))
    return client


def _why_not(client: Client | None, client_id: str, method: AuthMethod) -> str:
    """The log-only reason a claimed client cannot use ``method``."""
    if client is None:
        return f"unknown client_id {client_id[:64]!r}"
    return f"client {client_id!r} is registered for {client.token_endpoint_auth_method}, not {method}"


def _check_body_client_id(form: Mapping[str, str], client_id: str) -> None:
    body_id = form.get("client_id")
    if body_id is not None and body_id != client_id:
        raise InvalidRequest("client_id in the body does not match the authenticated client")


async def _check_secret(
    registry: ClientRegistry,
    client_id: str,
    secret: str,
    method: AuthMethod,
    error: type[InvalidClient],
    verifier: SecretVerifier | None,
) -> Client:
    """The client whose secret ``secret`` is. An unknown client, or one registered for another method, is
    checked against a hash no secret matches: same scrypt, same words, same time (RFC 6749 10.10)."""
    client = registry.get(client_id)
    usable = client is not None and client.token_endpoint_auth_method == method
    stored = client.client_secret_hash if usable and client is not None else None
    if verifier is not None:
        ok = await verifier.verify(client_id, secret, stored)
    else:
        ok = verify_client_secret(secret, stored or unmatchable_hash())
    if client is None or not usable:
        raise error(_FAILED, debug=_why_not(client, client_id, method))
    if not ok:
        raise error(_FAILED, debug=f"wrong secret for client {client_id!r}")
    return client


def _basic_credentials(header: str) -> tuple[str, str]:
    """RFC 6749 2.3.1: the form-urlencoded client_id and client_secret of a Basic header."""
    try:
        _, _, encoded = header.partition(" ")
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        raw_id, sep, raw_secret = decoded.partition(":")
        client_id = unquote_plus(raw_id, errors="strict")
        secret = unquote_plus(raw_secret, errors="strict")
    except ValueError as exc:  # binascii.Error, UnicodeDecodeError, and a header with non-ASCII characters
        raise BasicAuthFailed("malformed Basic authorization header") from exc
    if not sep or not client_id or not secret:
        raise BasicAuthFailed("malformed Basic authorization header: expected client_id:client_secret")
    return client_id, secret


def _check_post(form: Mapping[str, str]) -> tuple[str, str]:
    client_id, secret = form.get("client_id"), form["client_secret"]
    if not client_id or not secret:
        raise InvalidClient("client_secret_post needs both client_id and client_secret")
    return client_id, secret


def _check_none(registry: ClientRegistry, form: Mapping[str, str]) -> Client:
    client_id = form.get("client_id")
    if not client_id:
        raise InvalidClient("no client authentication was included and no client_id was given")
    return _registered(registry, client_id, "none")


def claimed_client_id(authorization_header: str | None, form: Mapping[str, str]) -> str | None:
    """The client id a request claims, before anything is verified (None when it names none it can).

    For the failure budget and locks (app.risk.client_guard), which must be consulted before a secret or
    signature is checked. Never raises: a request too malformed to name a client is refused later.
    """
    if authorization_header is not None and "client_assertion" not in form:
        try:
            return _basic_credentials(authorization_header)[0]
        except InvalidClient:
            return None
    token = form.get("client_assertion")
    if token and len(token) <= MAX_ASSERTION_LENGTH:
        try:
            iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except PyJWTError:
            iss = None
        if isinstance(iss, str) and iss:
            return iss
    return form.get("client_id") or None


async def _check_assertion(
    registry: ClientRegistry,
    form: Mapping[str, str],
    issuer: str,
    token_endpoint: str,
    now: datetime,
    jti_store: AssertionJtiStore,
    client_keys: ClientKeys | None,
) -> Client:
    """RFC 7523 section 3 with the FAPI 2.0 restrictions listed in the module docstring."""
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise InvalidClient(f"client_assertion_type must be {ASSERTION_TYPE}")
    token = form.get("client_assertion", "")
    if not token or len(token) > MAX_ASSERTION_LENGTH:
        raise InvalidClient("client_assertion is missing or too long")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except PyJWTError as exc:
        raise InvalidClient("client_assertion is not a well-formed JWT") from exc
    alg = header.get("alg")
    if alg not in ASSERTION_ALGS:
        raise InvalidClient(f"client_assertion alg must be one of {', '.join(sorted(ASSERTION_ALGS))}")
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or not client_id:
        raise InvalidClient("client_assertion needs iss set to the client_id")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidClient("client_assertion needs a kid naming one of the client's registered keys")
    _check_body_client_id(form, client_id)
    # Until the signature is verified, every refusal reads as an unknown client's (RFC 6749 10.10).
    client = _registered(registry, client_id, "private_key_jwt")
    keys = await _keys(client, kid, client_keys)
    claims = _verify_signature(keys, kid, token, alg, client_id)
    expires_at = _check_claims(claims, client_id, issuer, token_endpoint, now)
    if await jti_store.seen(client_id, claims["jti"], expires_at):
        raise InvalidClient("client_assertion jti has already been used")
    return client


async def _keys(client: Client, kid: str, client_keys: ClientKeys | None) -> Sequence[Mapping[str, Any]]:
    """The client's inline ``jwks``, or the set at its ``jwks_uri`` (fetched, cached, rate-limited)."""
    if client.jwks is not None:
        keys: list[Mapping[str, Any]] = client.jwks["keys"]
        return keys
    if client.jwks_uri is None or client_keys is None:
        raise InvalidClient(_FAILED, debug=f"no way to obtain the keys of client {client.client_id!r}")
    try:
        return await client_keys.keys(client, kid)
    except InvalidClient as exc:
        raise InvalidClient(_FAILED, debug=f"client {client.client_id!r}: {exc.description}") from exc


def _verify_signature(
    keys: Sequence[Mapping[str, Any]], kid: str, token: str, alg: str, client_id: str
) -> dict[str, Any]:
    jwk = next((k for k in keys if k["kid"] == kid), None)
    if jwk is None:
        raise InvalidClient(_FAILED, debug=f"client {client_id!r} has no key with kid {kid[:64]!r}")
    kty, crv = _KEY_FOR_ALG[alg]
    if jwk["kty"] != kty or jwk.get("crv") != crv or jwk.get("alg", alg) != alg:
        raise InvalidClient(_FAILED, debug=f"key {kid!r} of client {client_id!r} cannot verify {alg}")
    try:
        key = PyJWK(dict(jwk), algorithm=alg)
        # Signature only here; the time claims are checked against the injected ``now`` below.
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
        )
    except (PyJWTError, PyJWKError) as exc:
        raise InvalidClient(_FAILED, debug=f"client_assertion signature of {client_id!r} is invalid") from exc
    return claims


def _numeric_date(claims: Mapping[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidClient(f"client_assertion {name} must be a NumericDate")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidClient(f"client_assertion {name} is out of range") from exc


def _check_claims(
    claims: Mapping[str, Any], client_id: str, issuer: str, token_endpoint: str, now: datetime
) -> datetime:
    """The assertion's expiry, once iss, sub, aud, exp, iat, nbf and jti are acceptable."""
    if claims.get("sub") != client_id:
        raise InvalidClient("client_assertion sub must equal iss (the client_id)")
    aud = claims.get("aud")
    if aud != issuer:
        auds = aud if isinstance(aud, list) else [aud]
        hint = " (not the token endpoint)" if token_endpoint in auds else ""
        raise InvalidClient(f"client_assertion aud must be the issuer identifier as a string{hint}")
    exp = _numeric_date(claims, "exp")
    if exp is None:
        raise InvalidClient("client_assertion needs exp")
    if exp <= now:
        raise InvalidClient("client_assertion has expired")
    if exp > now + MAX_ASSERTION_LIFETIME:
        raise InvalidClient("client_assertion exp is more than 5 minutes ahead")
    iat = _numeric_date(claims, "iat")
    if iat is not None and iat > now + CLOCK_SKEW:
        raise InvalidClient("client_assertion iat is in the future")
    nbf = _numeric_date(claims, "nbf")
    if nbf is not None and nbf > now + CLOCK_SKEW:
        raise InvalidClient("client_assertion is not valid yet (nbf)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise InvalidClient("client_assertion needs a jti (a unique string of at most 256 characters)")
    return exp
