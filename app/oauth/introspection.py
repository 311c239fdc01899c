"""RFC 7662 token introspection and RFC 7009 token revocation.

Introspection is for registered (authenticated) clients only. An access token is active while
``app.oauth.liveness`` says it is live (the same rule userinfo applies). Revocation accepts a refresh
token (its family ends) or an access token (its session ends); it answers 200 whatever the token was
(RFC 7009 section 2.2).
"""

from __future__ import annotations

from typing import Any

from app.audit import events
from app.errors import InvalidClient, InvalidRequest, InvalidToken, OAuthError
from app.oauth import liveness
from app.oauth.client_failures import authenticate_client
from app.oauth.provider import Provider, secret_hash
from app.oidc.tokens import validate_access_token
from app.risk.errors import RateLimited

MAX_TOKEN = 8192


def _token(form: dict[str, str]) -> str:
    token = form.get("token")
    if not token:
        raise InvalidRequest("token is required")
    if len(token) > MAX_TOKEN:
        raise InvalidRequest("token is too long")
    return token


async def introspect(
    p: Provider, form: dict[str, str], authorization: str | None, meta: events.RequestMeta
) -> dict[str, Any]:
    client = await authenticate_client(p, form, authorization, meta, "/introspect")
    if client.token_endpoint_auth_method == "none":  # noqa: S105 (a method name)
        # RFC 7662 section 2.1: the caller must be authorized; a public client's id alone proves nothing.
        raise InvalidClient("introspection needs a client that authenticates; public clients (none) may not")
    token = _token(form)
    answer = await _access_token_state(p, token) or await _refresh_token_state(p, token)
    if answer is None:
        # Introspected-inactive is a security signal worth keeping (someone holds a dead or forged token).
        await p.audit_log.record(
            p.auditor.event(
                events.TOKEN_INTROSPECTED, events.SUCCESS, meta, reason="inactive", client_id=client.client_id
            )
        )
        return {"active": False}
    return answer


async def _access_token_state(p: Provider, token: str) -> dict[str, Any] | None:
    try:
        claims = await liveness.live_claims(p, token, any_audience=True)
    except InvalidToken:
        return None
    keep = ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti", "acr", "amr", "auth_time", "sid")
    extra: tuple[str, ...] = ("authorization_details", "compliance", "cnf", "wallet_address", "chain_id")
    extra += ("risk_level", "act", "delegation_id")
    token_type = "DPoP" if "cnf" in claims else "Bearer"
    return {"active": True, "token_type": token_type, **{k: claims[k] for k in keep + extra if k in claims}}


async def _refresh_token_state(p: Provider, token: str) -> dict[str, Any] | None:
    held = await p.store.find_refresh(secret_hash(token))
    now = p.clock.now()
    if held is None or not await p.store.family_active(held.family_id, now):
        return None
    if not await p.store.refresh_usable(held.token_hash, now):
        return None
    return {
        "active": True,
        "token_type": "refresh_token",
        "scope": held.scope,
        "client_id": held.client_id,
        "sub": held.subject,
        "exp": int(held.expires_at.timestamp()),
        "iat": int(held.issued_at.timestamp()),
        "sid": held.family_id,
    }


async def revoke(
    p: Provider, form: dict[str, str], authorization: str | None, meta: events.RequestMeta
) -> None:
    client_id = await _revoking_client(p, form, authorization, meta)
    token = _token(form)
    now = p.clock.now()
    family: str | None = None
    held = await p.store.find_refresh(secret_hash(token))
    if held is not None and held.client_id == client_id:
        family = held.family_id
    else:
        try:
            claims = validate_access_token(p.keys.ring, p.policy, token, now, any_audience=True)
        except InvalidToken:
            claims = {}
        if claims.get("client_id") == client_id and isinstance(claims.get("sid"), str):
            family = claims["sid"]
    if family is None:
        return  # RFC 7009 section 2.2: invalid tokens (or another client's) do not cause an error
    audit = p.auditor.event(
        events.TOKEN_FAMILY_REVOKED,
        events.SUCCESS,
        meta,
        reason="revoked_by_client",
        client_id=client_id,
        session=family,
        at=now,
    )
    await p.store.revoke_family(family, now, "revoked_by_client", audit)


async def _revoking_client(
    p: Provider, form: dict[str, str], authorization: str | None, meta: events.RequestMeta
) -> str:
    """A registered client authenticates; a public SIWE client (PORTCULLIS_CLIENTS) names itself."""
    client_id = form.get("client_id")
    public = authorization is None and "client_assertion" not in form and "client_secret" not in form
    if public and client_id and client_id in p.settings.clients:
        return client_id
    try:
        return (await authenticate_client(p, form, authorization, meta, "/revoke")).client_id
    except RateLimited:
        raise
    except OAuthError:
        raise InvalidClient("client authentication failed") from None
