"""RFC 6749 section 4.1.3 authorization code grant, with RFC 7636 PKCE and RFC 9449 section 10 ``dpop_jkt``.

A code is used once. Presented again it has leaked: the session its first use started is revoked
(RFC 6749 section 4.1.2, RFC 9700 section 4.5.3), and the second request gets ``invalid_grant``.
The checks that can fail without the code being spent (client, redirect URI, PKCE, DPoP key) run before the
atomic redemption, so a wrong guess does not burn a code that its client can still use. The wallet's
on-chain eligibility is asked again at the exchange, as at every refresh: a record revoked between the
sign-in and the exchange yields no tokens.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta

from app.audit import events
from app.errors import InvalidGrant, InvalidRequest, OAuthError
from app.oauth import compliance, grant_json, pkce, signin
from app.oauth.clients import Client
from app.oauth.dpop import DpopProof
from app.oauth.provider import Provider, secret_hash
from app.oauth.tokens import TokenResponse, issue_tokens
from app.storage.authz_records import CodeRecord, CodeUnavailable

MAX_CODE = 256

_REASONS = {
    "unknown": "the authorization code is unknown",
    "reused": "the authorization code was already used; what it issued has been revoked",
    "expired": "the authorization code has expired",
    "other_client": "the authorization code was issued to another client",
}


async def exchange(
    p: Provider, client: Client, form: Mapping[str, str], proof: DpopProof | None, meta: events.RequestMeta
) -> TokenResponse:
    code = form.get("code")
    if not code:
        raise InvalidRequest("code is required")
    try:
        return await _exchange(p, client, code, form, proof, meta)
    except CodeUnavailable as exc:
        if exc.reason == "reused" and exc.family_id is not None:
            revoked = p.auditor.event(
                events.CODE_REUSED,
                events.SUCCESS,
                meta,
                reason="code_reuse_detected",
                client_id=client.client_id,
                session=exc.family_id,
            )
            await p.store.revoke_family(exc.family_id, p.clock.now(), "code_reuse_detected", revoked)
        await _record_failure(p, meta, exc.reason, client.client_id)
        raise InvalidGrant(_REASONS[exc.reason]) from None
    except OAuthError as exc:
        await _record_failure(p, meta, exc.error, client.client_id, exc.description)
        raise


async def _exchange(
    p: Provider,
    client: Client,
    code: str,
    form: Mapping[str, str],
    proof: DpopProof | None,
    meta: events.RequestMeta,
) -> TokenResponse:
    if len(code) > MAX_CODE:
        raise CodeUnavailable("unknown")
    now = p.clock.now()
    record = await p.authz.find_code(secret_hash(code))
    if record is None:
        raise CodeUnavailable("unknown")
    if record.client_id != client.client_id:
        raise CodeUnavailable("other_client")
    if record.redeemed_at is not None:
        raise CodeUnavailable("reused", record.family_id)
    if record.expires_at <= now:
        raise CodeUnavailable("expired")
    _check_redirect_uri(record, form.get("redirect_uri"))
    pkce.verify(form.get("code_verifier"), record.code_challenge)
    if record.dpop_jkt is not None and (proof is None or proof.jkt != record.dpop_jkt):
        raise InvalidGrant("the code is bound to a DPoP key (dpop_jkt) this request did not prove")
    grant = replace(grant_json.loads(record.grant), cnf_jkt=proof.jkt if proof is not None else None)
    decision = await compliance.decide(p, grant.chain_id, grant.address)  # unreadable: 503, fail closed
    if decision is not None and not decision.eligible:
        raise InvalidGrant(compliance.refusal(decision))  # the code is not spent; it runs out in seconds
    ends = compliance.not_after(decision)  # a record shortened since the sign-in shortens the tokens
    if ends is not None and (grant.not_after is None or ends < grant.not_after):
        grant = replace(grant, not_after=ends)
    lifetime = client.access_token_lifetime
    access_ttl = timedelta(seconds=lifetime) if lifetime is not None else None
    refresh_token = p.entropy.token(32)
    # The session (refresh-token family) exists even for clients without refresh tokens: `sid`,
    # introspection, logout and reuse revocation follow it. A public client's family is bound to its key.
    public = client.token_endpoint_auth_method == "none"  # noqa: S105 (a method name)
    session = signin.new_family_record(
        p,
        grant,
        secret_hash(refresh_token),
        now,
        dpop_jkt=proof.jkt if proof is not None and public else None,
    )
    if client.refresh_token_lifetime is not None:
        cap = now + timedelta(seconds=client.refresh_token_lifetime)
        session = replace(session, expires_at=min(session.expires_at, cap))
    grant = replace(grant, session_id=session.family_id)
    jti = p.entropy.token(16)
    audit = p.auditor.event(
        events.CODE_REDEEMED,
        events.SUCCESS,
        meta,
        actor=grant.subject,
        client_id=client.client_id,
        session=session.family_id,
        kid=p.keys.ring.active.kid,
        data={
            "request_id": record.request_id,
            "jti": jti,
            "scope": grant.scope,
            "dpop": proof is not None,
        },
        at=now,
    )
    await p.authz.redeem_code(record.code_hash, client.client_id, now, session, audit)
    offers_refresh = "refresh_token" in client.grant_types
    return issue_tokens(
        p,
        grant,
        now,
        refresh_token=refresh_token if offers_refresh else None,
        oidc_nonce=record.oidc_nonce,
        jti=jti,
        access_ttl=access_ttl,
    )


def _check_redirect_uri(record: CodeRecord, sent: str | None) -> None:
    """RFC 6749 4.1.3: the same redirect_uri as the authorization request (which always carries one)."""
    if sent is None:
        raise InvalidGrant("redirect_uri is required: the authorization request carried one")
    if not hmac.compare_digest(sent.encode(), record.redirect_uri.encode()):
        raise InvalidGrant("redirect_uri does not match the authorization request")


async def _record_failure(
    p: Provider, meta: events.RequestMeta, reason: str, client_id: str, detail: str | None = None
) -> None:
    data = {"detail": detail[:300]} if detail else None
    await p.audit_log.record(
        p.auditor.event(
            events.CODE_REDEEM_FAILED, events.FAILURE, meta, reason=reason, client_id=client_id, data=data
        )
    )
