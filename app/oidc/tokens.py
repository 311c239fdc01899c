"""Tokens: RFC 9068 JWT access tokens and OpenID Connect Core 1.0 ID tokens for a wallet subject.

``sub`` is a CAIP-10 ``did:pkh`` (``did:pkh:eip155:<chain id>:<EIP-55 address>``); ``amr`` follows RFC 8176
style with the value ``siwe``. Pure: the caller passes ``now``, the key ring and identifiers.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from app.errors import InvalidToken
from app.oidc.keys import KeyRing

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 (a media type, not a secret)


def did_pkh(chain_id: int, address: str) -> str:
    return f"did:pkh:eip155:{chain_id}:{address}"


@dataclass(frozen=True, slots=True)
class Grant:
    """Who was authenticated, how and for what: everything a token says about its holder."""

    address: str
    chain_id: int
    client_id: str
    scope: str
    auth_time: datetime
    # The on-chain compliance decision (ComplianceDecision.claim()) and the moment it stops holding
    # (the registry record's validUntil): no token may outlive it.
    compliance: dict[str, Any] | None = None
    not_after: datetime | None = None
    # RFC 8176 methods and the authentication context class they add up to (app.mfa.acr).
    amr: tuple[str, ...] = ("siwe",)
    acr: str = "urn:portcullis:acr:wallet"
    # RFC 9396: what the holder may do, as the policy granted (narrowed) it.
    authorization_details: tuple[dict[str, Any], ...] = ()
    risk_level: str | None = None  # low / medium / high at sign-in (the level only, docs/RISK.md)
    # The refresh-token family this token belongs to (OIDC `sid`): introspection and revocation follow it.
    session_id: str | None = None
    # RFC 9449 section 6: the thumbprint of the DPoP key the access token is bound to (`cnf.jkt`).
    cnf_jkt: str | None = None
    # RFC 8707: the resource servers the access token is for (its `aud`); empty means the default audience.
    audience: tuple[str, ...] = ()
    # RFC 8693 section 4.1: who acts for the subject (a bot a delegation names), its ``act`` claim, and the
    # delegation it acts under (``delegation_id``: introspection follows it, as it follows ``sid``).
    actor: str | None = None
    delegation_id: str | None = None

    @property
    def subject(self) -> str:
        return did_pkh(self.chain_id, self.address)

    def expiry(self, now: datetime, ttl: timedelta) -> datetime:
        end = now + ttl
        return min(end, self.not_after) if self.not_after is not None else end


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    issuer: str
    audience: str
    access_ttl: timedelta
    id_ttl: timedelta


def _half_hash(value: str, alg: str) -> str:
    # OIDC Core 3.1.3.6 at_hash: left half of the hash used by the JWS alg. ES256 -> SHA-256; EdDSA (Ed25519)
    # -> SHA-512, per the OpenID Foundation's clarification for EdDSA with Ed25519.
    digest = (
        hashlib.sha512(value.encode()).digest() if alg == "EdDSA" else hashlib.sha256(value.encode()).digest()
    )
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def _epoch(t: datetime) -> int:
    return int(t.timestamp())


def mint_access_token(ring: KeyRing, policy: TokenPolicy, grant: Grant, now: datetime, jti: str) -> str:
    claims: dict[str, Any] = {
        "iss": policy.issuer,
        "sub": grant.subject,
        "aud": _audience(grant.audience, policy.audience),
        "exp": _epoch(grant.expiry(now, policy.access_ttl)),
        "iat": _epoch(now),
        "auth_time": _epoch(grant.auth_time),
        "jti": jti,
        "client_id": grant.client_id,
        "scope": grant.scope,
        "amr": list(grant.amr),
        "acr": grant.acr,
        "wallet_address": grant.address,
        "chain_id": grant.chain_id,
    }
    if grant.compliance is not None:
        claims["compliance"] = grant.compliance
    if grant.authorization_details:
        claims["authorization_details"] = list(grant.authorization_details)
    if grant.risk_level is not None:
        claims["risk_level"] = grant.risk_level
    if grant.session_id is not None:
        claims["sid"] = grant.session_id
    if grant.cnf_jkt is not None:
        claims["cnf"] = {"jkt": grant.cnf_jkt}
    if grant.actor is not None:
        claims["act"] = {"sub": grant.actor}
    if grant.delegation_id is not None:
        claims["delegation_id"] = grant.delegation_id
    return _sign(ring, claims, typ=ACCESS_TOKEN_TYP)


def _audience(resources: tuple[str, ...], default: str) -> str | list[str]:
    return (list(resources) if len(resources) > 1 else resources[0]) if resources else default


@dataclass(frozen=True, slots=True)
class ServiceGrant:
    """RFC 6749 section 4.4 client credentials: a DeFi backend acting for itself, no wallet subject."""

    client_id: str
    scope: str
    ttl: timedelta
    cnf_jkt: str | None = None
    audience: tuple[str, ...] = ()


def mint_service_token(
    ring: KeyRing, policy: TokenPolicy, grant: ServiceGrant, now: datetime, jti: str
) -> str:
    """RFC 9068 section 2.2: with no resource owner, ``sub`` is the client's own id."""
    claims: dict[str, Any] = {
        "iss": policy.issuer,
        "sub": grant.client_id,
        "aud": _audience(grant.audience, policy.audience),
        "exp": _epoch(now + grant.ttl),
        "iat": _epoch(now),
        "jti": jti,
        "client_id": grant.client_id,
        "scope": grant.scope,
    }
    if grant.cnf_jkt is not None:
        claims["cnf"] = {"jkt": grant.cnf_jkt}
    return _sign(ring, claims, typ=ACCESS_TOKEN_TYP)


def mint_id_token(
    ring: KeyRing,
    policy: TokenPolicy,
    grant: Grant,
    now: datetime,
    *,
    access_token: str,
    oidc_nonce: str | None,
) -> str:
    claims: dict[str, Any] = {
        "iss": policy.issuer,
        "sub": grant.subject,
        "aud": grant.client_id,
        "exp": _epoch(grant.expiry(now, policy.id_ttl)),
        "iat": _epoch(now),
        "auth_time": _epoch(grant.auth_time),
        "amr": list(grant.amr),
        "acr": grant.acr,
        "azp": grant.client_id,
        "at_hash": _half_hash(access_token, ring.active.alg),
        "wallet_address": grant.address,
        "chain_id": grant.chain_id,
    }
    if oidc_nonce is not None:
        claims["nonce"] = oidc_nonce
    if grant.compliance is not None:
        claims["compliance"] = grant.compliance
    if grant.session_id is not None:
        claims["sid"] = grant.session_id
    return _sign(ring, claims, typ="JWT")


def _sign(ring: KeyRing, claims: dict[str, Any], *, typ: str) -> str:
    key = ring.active
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": typ})


def validate_access_token(
    ring: KeyRing, policy: TokenPolicy, token: str, now: datetime, *, any_audience: bool = False
) -> dict[str, Any]:
    """Check an access token we issued (RFC 9068 section 4): typ, signature, iss, aud, exp.

    ``any_audience`` is for introspection, which answers for every token this server issued, whatever
    resource it names (RFC 8707).
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise InvalidToken("the access token is not a JWT") from None
    if header.get("typ") != ACCESS_TOKEN_TYP:
        raise InvalidToken("the token is not an access token (typ must be at+jwt)")
    jwk = next((k for k in ring.published if k["kid"] == header.get("kid")), None)
    if jwk is None or header.get("alg") != jwk["alg"]:
        raise InvalidToken("the access token was not signed by a key of this server")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            jwt.PyJWK(jwk).key,
            algorithms=[jwk["alg"]],
            audience=None if any_audience else policy.audience,
            issuer=policy.issuer,
            # PyJWT reads the wall clock; expiry is checked below against the injected clock instead.
            options={
                "require": ["exp", "iat", "sub", "client_id"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_aud": not any_audience,
            },
        )
    except jwt.InvalidTokenError as exc:
        raise InvalidToken(f"the access token is invalid: {exc}") from None
    if claims["exp"] <= _epoch(now):
        raise InvalidToken("the access token has expired")
    return claims
