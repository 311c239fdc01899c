"""RFC 9068 section 4: validating a JWT access token of Portcullis, and the typed token it yields.

Pure: :func:`check_header` and :func:`check_claims` take the expected values and ``now`` (Unix seconds); the
key lookup is the caller's (``portcullis_resource.jwks``). Headers that would point at other keys (``jku``,
``x5u``, ``jwk``, ``x5c``) are never read; a ``crit`` header is refused, since no extension is understood.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from portcullis_resource import jws
from portcullis_resource.errors import InvalidToken

ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")  # RFC 9068 section 2.1 (case-insensitive)
# CAIP-10 account id inside did:pkh (did:pkh:eip155:1:0xab...).
DID_PKH = re.compile(r"did:pkh:[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}:[-.%a-zA-Z0-9]{1,128}")


@dataclass(frozen=True, slots=True)
class Compliance:
    """The ``compliance`` claim (docs/POLICY.md, "Claims"): which facts a token carries depends on its
    scopes, so every fact may be None. ``source`` "none" means the operator runs without the gate."""

    source: str | None
    chain_id: int | None
    block: int | None
    residence: str | None
    investor_class: str | None
    kyc_level: int | None
    flags: tuple[str, ...] | None
    valid_until: int | None

    @classmethod
    def from_claim(cls, claim: Any) -> Compliance | None:
        if not isinstance(claim, dict):
            return None

        def text(name: str) -> str | None:
            v = claim.get(name)
            return v if isinstance(v, str) else None

        def number(name: str) -> int | None:
            v = claim.get(name)
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        flags = claim.get("flags")
        return cls(
            source=text("source"),
            chain_id=number("chain_id"),
            block=number("block"),
            residence=text("residence"),
            investor_class=text("investor_class"),
            kyc_level=number("kyc_level"),
            flags=tuple(f for f in flags if isinstance(f, str)) if isinstance(flags, list) else None,
            valid_until=number("valid_until"),
        )


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A validated access token. ``claims`` holds every claim; the common ones are typed here."""

    raw: str
    claims: dict[str, Any]
    subject: str
    client_id: str
    scopes: frozenset[str]
    acr: str | None
    amr: tuple[str, ...]
    auth_time: int | None
    jkt: str | None  # RFC 9449 cnf.jkt: the token is DPoP-bound to this key thumbprint
    authorization_details: tuple[dict[str, Any], ...]
    introspected: bool = False

    @property
    def compliance(self) -> Compliance | None:
        """The typed ``compliance`` claim (read when asked: most routes never look)."""
        return Compliance.from_claim(self.claims.get("compliance"))

    @property
    def wallet_address(self) -> str | None:
        v = self.claims.get("wallet_address")
        return v if isinstance(v, str) else None

    @property
    def chain_id(self) -> int | None:
        v = self.claims.get("chain_id")
        return v if isinstance(v, int) else None


@dataclass(frozen=True, slots=True)
class Expected:
    """What a token must say to be for us."""

    issuer: str
    audiences: frozenset[str]
    skew: float = 30.0
    allow_service_tokens: bool = False  # client_credentials tokens (sub = client_id, RFC 9068 section 2.2)


def check_header(header: dict[str, Any], algorithms: Collection[str]) -> tuple[str, str | None]:
    """(alg, kid) of an access token's header, or InvalidToken."""
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
        raise InvalidToken("the token is not an access token (typ must be at+jwt)")
    if "crit" in header:
        raise InvalidToken("the token names critical header parameters this server does not understand")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in jws.ALGORITHMS or alg not in algorithms:
        raise InvalidToken("the token's signing algorithm is not one the issuer advertises")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("the token's kid is not a string")
    return alg, kid


def check_claims(claims: dict[str, Any], expected: Expected, now: float) -> None:
    """iss, aud, exp, nbf, iat, client_id, sub, jti and the compliance record's end."""
    if claims.get("iss") != expected.issuer:
        raise InvalidToken("the token was issued by another issuer")
    aud = claims.get("aud")
    auds = (
        {aud}
        if isinstance(aud, str)
        else {a for a in aud if isinstance(a, str)}
        if isinstance(aud, list)
        else set()
    )
    if not auds & expected.audiences:
        raise InvalidToken("the token is not for this resource (aud)")
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf", 0)
    if not (_is_number(exp) and _is_number(iat) and _is_number(nbf)):
        raise InvalidToken("exp and iat must be numbers")
    assert exp is not None and iat is not None and nbf is not None
    if now - expected.skew >= exp:
        raise InvalidToken("the token has expired")
    if nbf > now + expected.skew or iat > now + expected.skew:
        raise InvalidToken("the token is not valid yet")
    client_id, sub = claims.get("client_id"), claims.get("sub")
    if not isinstance(client_id, str) or not client_id:
        raise InvalidToken("the token has no client_id")
    if not isinstance(sub, str) or not (
        DID_PKH.fullmatch(sub) or (expected.allow_service_tokens and sub == client_id)
    ):
        raise InvalidToken("the token's subject is not a did:pkh")
    if not isinstance(claims.get("jti"), str):
        raise InvalidToken("the token has no jti")
    compliance = claims.get("compliance")
    until = compliance.get("valid_until") if isinstance(compliance, dict) else None
    if until is not None and _is_number(until) and not now < until:
        # Portcullis caps exp at valid_until; a token past it is refused whatever its exp says.
        raise InvalidToken("the compliance record the token was issued under is no longer valid")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def access_token(raw: str, claims: dict[str, Any], *, introspected: bool = False) -> AccessToken:
    """The typed view of already checked ``claims``."""
    scope = claims.get("scope")
    amr = claims.get("amr")
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    details = claims.get("authorization_details")
    auth_time = claims.get("auth_time")
    acr = claims.get("acr")
    return AccessToken(
        raw=raw,
        claims=claims,
        subject=str(claims.get("sub")),
        client_id=str(claims.get("client_id")),
        scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
        acr=acr if isinstance(acr, str) else None,
        amr=tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else (),
        auth_time=auth_time if _is_number(auth_time) else None,
        jkt=jkt if isinstance(jkt, str) else None,
        authorization_details=tuple(d for d in details if isinstance(d, dict))
        if isinstance(details, list)
        else (),
        introspected=introspected,
    )
