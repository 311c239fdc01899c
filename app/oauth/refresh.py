"""RFC 6749 section 6 refresh with rotation (RFC 9700 section 4.14.2): a rotated token used again revokes
its whole family, except the retry FAPI 2.0 Security Profile 5.3.2.1 (10) requires: within
``refresh_retry_window`` seconds of its rotation, and while its successor is unused, the immediate
predecessor may be presented again by a client that authenticates or proves the token's DPoP key; it gets a
fresh pair and the unused successor is revoked (docs/CLIENTS.md, "Refresh rotation and retry"). The family
keeps its absolute expiry; a refresh may narrow the scope, never widen it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.audit import events
from app.chain.types import ComplianceDecision
from app.errors import InvalidGrant, InvalidRequest, OAuthError
from app.oauth import compliance, trading
from app.oauth.provider import Provider, secret_hash
from app.oauth.scope import narrow_scope
from app.oauth.tokens import TokenResponse, issue_tokens
from app.oidc.tokens import Grant
from app.policy.facts import AuthContext
from app.storage.records import AuditRecord, RefreshRecord, RefreshUnavailable, RetryRule

MAX_REFRESH_TOKEN = 512

_REASONS = {
    "unknown": "the refresh token is unknown",
    "reused": "the refresh token was already used; its token family has been revoked",
    "revoked": "the refresh token has been revoked",
    "expired": "the refresh token has expired",
    "other_client": "the refresh token was issued to another client",
    "superseded": "a concurrent request with this refresh token was answered first",
}


@dataclass(frozen=True, slots=True)
class Holder:
    """Who presents the refresh token: an authenticated registered client, or a public SIWE client id,
    and the DPoP key the request proved (RFC 9449 section 5), if any."""

    client_id: str | None
    authenticated: bool = False
    dpop_jkt: str | None = None
    access_ttl: timedelta | None = None


async def refresh(
    p: Provider,
    token: str | None,
    client_id: str | None,
    scope: str | None,
    meta: events.RequestMeta,
    holder: Holder | None = None,
) -> TokenResponse:
    if not token:
        raise InvalidRequest("refresh_token is required")
    now = p.clock.now()
    holder = holder or Holder(client_id)
    try:
        return await _rotate(p, token, holder, scope, meta)
    except RefreshUnavailable as exc:
        if exc.reason == "reused" and exc.family_id is not None:
            # A rotated token presented again has leaked: end the whole session, and say so in the log.
            revoked = p.auditor.event(
                events.TOKEN_FAMILY_REVOKED,
                events.SUCCESS,
                meta,
                reason="reuse_detected",
                client_id=client_id,
                session=exc.family_id,
                at=now,
            )
            await p.store.revoke_family(exc.family_id, now, "reuse_detected", revoked)
        await _record_failure(p, meta, exc.reason, client_id, exc.family_id)
        raise InvalidGrant(_REASONS[exc.reason]) from None
    except OAuthError as exc:
        await _record_failure(p, meta, exc.error, client_id, None)
        raise


async def _rotate(
    p: Provider, token: str, holder: Holder, scope: str | None, meta: events.RequestMeta
) -> TokenResponse:
    if len(token) > MAX_REFRESH_TOKEN:
        raise RefreshUnavailable("unknown")
    client = (
        holder.client_id if holder.authenticated and holder.client_id else p.check_client(holder.client_id)
    )
    now = p.clock.now()
    decision = await _still_eligible(p, token, meta, now)
    successor = p.entropy.token(32)
    jti = p.entropy.token(16)

    def describe(new: RefreshRecord, retried: bool) -> AuditRecord:
        data = {"jti": jti, "scope": narrow_scope(scope, new.scope)}
        return p.auditor.event(
            events.TOKEN_REFRESHED,
            events.SUCCESS,
            meta,
            # A retry revoked the successor the client never received: say so in the log.
            reason="retried" if retried else None,
            actor=new.subject,
            client_id=client,
            session=new.family_id,
            kid=p.keys.ring.active.kid,
            data={**data, "retry": True} if retried else data,
            at=now,
        )

    record = await p.store.rotate_refresh(
        secret_hash(token),
        client,
        secret_hash(successor),
        now,
        describe,
        check=lambda old: _check(scope, old, holder.dpop_jkt),
        retry=retry_rule(p, holder, now),
    )
    # The policy judges the family's grant again on today's facts: access only shrinks with them. Items
    # that need a fresher authentication (RFC 9470) are dropped rather than stepped up: a refresh
    # authenticates nobody.
    auth = AuthContext(acr=record.acr, amr=tuple(record.amr.split()), auth_time=record.auth_time)
    ruling = trading.decide(
        p,
        decision,
        narrow_scope(scope, record.scope).split(),
        json.loads(record.authorization_details),
        auth,
        now,
    )
    if ruling.outcome == "deny":
        raise InvalidGrant("the trading policy no longer grants this session anything")
    lifetime = trading.lifetime_cap(ruling, now)
    not_after = compliance.not_after(decision)
    grant = Grant(
        address=record.address,
        chain_id=record.chain_id,
        client_id=record.client_id,
        scope=ruling.scope,
        auth_time=record.auth_time,
        compliance=compliance.token_claim(p, decision),
        not_after=min(t for t in (not_after, lifetime, record.expires_at) if t is not None),
        amr=tuple(record.amr.split()),
        acr=record.acr,
        authorization_details=tuple(ruling.granted_details),
        session_id=record.family_id,
        cnf_jkt=holder.dpop_jkt,
    )
    return issue_tokens(
        p, grant, now, refresh_token=successor, oidc_nonce=None, jti=jti, access_ttl=holder.access_ttl
    )


def retry_rule(p: Provider, holder: Holder, now: datetime) -> RetryRule | None:
    """Who may retry a rotation. A client that authenticates proves itself on the retry as on any refresh;
    a public client only with a DPoP-bound token, whose key the retry must prove (``_check``). A public
    client's bearer refresh token gets no retry: rotation is then its only protection (RFC 9700 section
    4.14.2), and any reuse revokes the family."""
    window = p.settings.refresh_retry_window
    if window == 0:
        return None
    return RetryRule(since=now - timedelta(seconds=window), bound_only=not holder.authenticated)


async def _still_eligible(
    p: Provider, token: str, meta: events.RequestMeta, now: datetime
) -> ComplianceDecision | None:
    """Refresh re-asks the chain: a wallet the registry revoked, froze or let expire loses its session."""
    held = await p.store.find_refresh(secret_hash(token))
    if held is None:
        return None  # rotation refuses it with the precise reason
    decision = await compliance.decide(p, held.chain_id, held.address)
    if decision is not None and not decision.eligible:
        reason = compliance.refusal(decision)
        audit = p.auditor.event(
            events.TOKEN_FAMILY_REVOKED,
            events.SUCCESS,
            meta,
            reason=compliance.NOT_ELIGIBLE,
            actor=held.subject,
            client_id=held.client_id,
            session=held.family_id,
            data={"reasons": list(decision.reasons), "block": decision.block_number},
            at=now,
        )
        await p.store.revoke_family(held.family_id, now, compliance.NOT_ELIGIBLE, audit)
        raise InvalidGrant(reason)
    return decision


async def _record_failure(
    p: Provider, meta: events.RequestMeta, reason: str, client_id: str | None, family_id: str | None
) -> None:
    await p.audit_log.record(
        p.auditor.event(
            events.TOKEN_REFRESH_FAILED,
            events.FAILURE,
            meta,
            reason=reason,
            client_id=client_id,
            session=family_id,
        )
    )


def _check(requested: str | None, old: RefreshRecord, dpop_jkt: str | None) -> None:
    narrow_scope(requested, old.scope)
    # RFC 9449 section 5: a public client's refresh token works only with the key it was bound to.
    if old.dpop_jkt is not None and old.dpop_jkt != dpop_jkt:
        raise InvalidGrant("the refresh token is bound to another DPoP key")
