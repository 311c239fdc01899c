"""RFC 7523 section 2.1: the JWT bearer authorization grant, by which a bot gets tokens under a delegation.

``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` with ``assertion``: a JWT signed by the bot's
key (ES256 or EdDSA), its public JWK in the header, ``iss`` its RFC 7638 thumbprint, ``sub`` the
delegation id, ``aud`` the issuer, ``exp`` at most 5 minutes ahead, ``iat`` and a single-use ``jti``. The
request carries an RFC 9449 DPoP proof made with the same key. The checks run in order, cheap first
(``check_*``); every issuance re-checks the delegation, the wallet's eligibility on chain, the policy and the
delegate's rate limit. The token: ``sub`` the wallet's did:pkh, ``act`` the bot (RFC 8693 section 4.1),
``cnf.jkt`` its key, ``delegation_id``; no refresh token and no ID token (the bot re-asserts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from jwt import PyJWK
from jwt.exceptions import PyJWKError, PyJWTError

from app.audit import events
from app.errors import InvalidGrant, InvalidRequest, OAuthError
from app.oauth import compliance, delegation
from app.oauth.dpop import DpopProof, InvalidDpopProof, thumbprint
from app.oauth.provider import Provider
from app.oauth.tokens import TokenResponse
from app.oidc.tokens import Grant, mint_access_token
from app.policy import claims as released
from app.storage.delegation_records import DelegationRecord

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ALGS = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}
MAX_ASSERTION = 4096
MAX_LIFETIME = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=60)
# The jti namespace of delegate assertions in the shared store (apart from client assertions' client ids).
JTI_ISSUER_PREFIX = "delegate:"


class Refused(OAuthError):
    """Carries the failed check's name to the ``delegation.refused`` entry."""


@dataclass(slots=True)
class Attempt:
    check: str = "assertion"
    jkt: str | None = None
    delegation_id: str | None = None
    subject: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _date(claims: Mapping[str, Any], name: str) -> datetime:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidGrant(f"the assertion needs {name} as a NumericDate")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidGrant(f"the assertion's {name} is out of range") from None


def check_assertion(p: Provider, token: str, now: datetime, attempt: Attempt) -> tuple[dict[str, Any], str]:
    """Signature by the key in the header, and the claims (RFC 7523 section 3); returns them and the key's
    thumbprint. Pure apart from the clock."""
    if not token or len(token) > MAX_ASSERTION:
        raise InvalidRequest("assertion is missing or too long")
    try:
        header = jwt.get_unverified_header(token)
    except PyJWTError:
        raise InvalidGrant("the assertion is not a well-formed JWT") from None
    alg, jwk = header.get("alg"), header.get("jwk")
    if alg not in ALGS:
        raise InvalidGrant(f"the assertion's alg must be one of {', '.join(sorted(ALGS))}")
    if not isinstance(jwk, dict) or "d" in jwk:
        raise InvalidGrant("the assertion's header needs the bot's public key as jwk")
    kty, crv = ALGS[alg]
    if jwk.get("kty") != kty or jwk.get("crv") != crv:
        raise InvalidGrant(f"the header's jwk cannot verify {alg}")
    try:
        attempt.jkt = jkt = thumbprint(jwk)
        claims: dict[str, Any] = jwt.decode(
            token,
            key=PyJWK(dict(jwk), algorithm=alg),
            algorithms=[alg],
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
        )
    except (PyJWTError, PyJWKError, ValueError):
        raise InvalidGrant("the assertion's signature does not verify with the key in its header") from None
    if claims.get("iss") != jkt:
        raise InvalidGrant("the assertion's iss must be the RFC 7638 thumbprint of its signing key")
    if claims.get("aud") != p.settings.issuer:
        raise InvalidGrant("the assertion's aud must be the issuer identifier")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= 64:
        raise InvalidGrant("the assertion's sub must be the delegation id")
    attempt.delegation_id = sub
    exp, iat = _date(claims, "exp"), _date(claims, "iat")
    if exp <= now:
        raise InvalidGrant("the assertion has expired")
    if exp > now + MAX_LIFETIME or exp - iat > MAX_LIFETIME:
        raise InvalidGrant("the assertion may live at most 5 minutes")
    if iat > now + CLOCK_SKEW:
        raise InvalidGrant("the assertion's iat is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 256:
        raise InvalidGrant("the assertion needs a jti (a unique string of at most 256 characters)")
    return claims, jkt


def check_proof(proof: DpopProof | None, jkt: str) -> None:
    """RFC 9449: a bot's token is always bound to the key the delegation names."""
    if proof is None:
        raise InvalidDpopProof("a DPoP proof made with the delegated key is required")
    if proof.jkt != jkt:
        raise InvalidDpopProof("the DPoP proof is made with another key than the assertion")


async def check_delegation(p: Provider, delegation_id: str, jkt: str, now: datetime) -> DelegationRecord:
    record = await p.delegations.get(delegation_id)
    if record is None or record.delegate_jkt != jkt:
        raise InvalidGrant("no delegation to this key has that id")
    if not record.live(now):
        raise InvalidGrant(f"the delegation is {record.state(now).replace('_', ' ')}")
    return record


async def check_jti(p: Provider, claims: Mapping[str, Any], jkt: str) -> None:
    if await p.assertion_jtis.seen(JTI_ISSUER_PREFIX + jkt, claims["jti"], _date(claims, "exp")):
        raise InvalidGrant("the assertion's jti has already been used")


async def issue(
    p: Provider, form: Mapping[str, str], proof: DpopProof | None, meta: events.RequestMeta
) -> TokenResponse:
    now = p.clock.now()
    attempt = Attempt()
    try:
        return await _issue(p, form, proof, meta, now, attempt)
    except OAuthError as exc:
        await delegation.record_refusal(
            p,
            meta,
            exc,
            now,
            attempt.subject,
            check=attempt.check,
            delegate_jkt=attempt.jkt,
            delegation_id=attempt.delegation_id,
        )
        raise


async def _issue(
    p: Provider,
    form: Mapping[str, str],
    proof: DpopProof | None,
    meta: events.RequestMeta,
    now: datetime,
    attempt: Attempt,
) -> TokenResponse:
    claims, jkt = check_assertion(p, form.get("assertion", ""), now, attempt)
    attempt.check = "dpop"
    check_proof(proof, jkt)
    attempt.check = "rate_limit"
    await p.guard.admit("bot", ip=meta.ip, client_id=JTI_ISSUER_PREFIX + jkt)  # per delegate key
    attempt.check = "delegation"
    record = await check_delegation(p, claims["sub"], jkt, now)
    attempt.subject = record.subject
    attempt.check = "replay"
    await check_jti(p, claims, jkt)
    attempt.check = "eligibility"
    decision = await compliance.decide(p, record.chain_id, record.address)
    if decision is not None and not decision.eligible:
        raise InvalidGrant(compliance.refusal(decision))
    attempt.check = "policy"
    ruling = delegation.judge(p, decision, record, now)
    if not ruling.granted_scopes and not ruling.granted_details:
        raise InvalidGrant("the trading policy no longer grants this delegation anything")
    ttl = timedelta(seconds=p.settings.delegation_token_ttl_seconds)
    cap = [t for t in (compliance.not_after(decision), record.expires_at) if t is not None]
    if ruling.max_token_lifetime:
        cap.append(now + timedelta(seconds=ruling.max_token_lifetime))
    actor = delegation.jkt_uri(jkt)
    grant = Grant(
        address=record.address,
        chain_id=record.chain_id,
        client_id=actor,
        scope=ruling.scope,
        auth_time=record.created_at,
        compliance=compliance.token_claim(p, decision),
        not_after=min(cap),
        authorization_details=tuple(ruling.granted_details),
        cnf_jkt=jkt,
        actor=actor,
        delegation_id=record.delegation_id,
    )
    jti = p.entropy.token(16)
    policy = replace(p.policy, access_ttl=min(ttl, p.policy.access_ttl))
    carried = released.release(p.trading_policy, grant.scope, grant.compliance)
    access = mint_access_token(p.keys.ring, policy, replace(grant, compliance=carried.access_token), now, jti)
    await p.audit_log.record(
        p.auditor.event(
            events.DELEGATION_USED,
            events.SUCCESS,
            meta,
            actor=record.subject,
            client_id=actor,
            kid=p.keys.ring.active.kid,
            data={
                "delegation_id": record.delegation_id,
                "delegate_jkt": jkt,
                "jti": jti,
                "scope": grant.scope,
                "refused": delegation.refusals(ruling),
            },
            at=now,
        )
    )
    return TokenResponse(
        access_token=access,
        expires_in=int((grant.expiry(now, policy.access_ttl) - now).total_seconds()),
        scope=grant.scope,
        authorization_details=grant.authorization_details,
        token_type="DPoP",  # noqa: S106 (a token type)
    )
