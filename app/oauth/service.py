"""RFC 6749 section 4.4 client credentials: service tokens for DeFi backends (no wallet subject).

Only the trading policy's service scopes (``clients = ["service"]``) may be asked for, and only those the
client registered; the token lives no longer than the tightest of the server's, the client's and each
scope's lifetime.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from app.audit import events
from app.errors import InvalidScope
from app.oauth.authz_request import check_resource
from app.oauth.clients import Client
from app.oauth.dpop import DpopProof
from app.oauth.provider import Provider
from app.oauth.scope import parse_scope
from app.oauth.tokens import TokenResponse
from app.oidc.tokens import ServiceGrant, mint_service_token


def _scopes(p: Provider, client: Client, raw: str | None) -> list[str]:
    service = p.trading_policy.scopes_supported("service")
    allowed = [s for s in service if not client.scope or s in client.scope]
    requested = parse_scope(raw)
    if not requested:
        if not allowed:
            raise InvalidScope("this client has no service scope to ask for")
        return allowed
    refused = [s for s in requested if s not in allowed]
    if refused:
        raise InvalidScope(f"scope not allowed for client credentials: {' '.join(refused)[:200]}")
    return requested


def _ttl(p: Provider, client: Client, scopes: list[str]) -> timedelta:
    caps = [p.settings.access_token_ttl_seconds]
    if client.access_token_lifetime is not None:
        caps.append(client.access_token_lifetime)
    for name in scopes:
        rule = p.trading_policy.scopes.get(name)
        if rule is not None and rule.max_token_lifetime is not None:
            caps.append(rule.max_token_lifetime)
    if p.trading_policy.max_token_lifetime is not None:
        caps.append(p.trading_policy.max_token_lifetime)
    return timedelta(seconds=min(caps))


async def issue(
    p: Provider, client: Client, form: Mapping[str, str], proof: DpopProof | None, meta: events.RequestMeta
) -> TokenResponse:
    scopes = _scopes(p, client, form.get("scope"))
    now = p.clock.now()
    grant = ServiceGrant(
        client_id=client.client_id,
        scope=" ".join(scopes),
        ttl=_ttl(p, client, scopes),
        cnf_jkt=proof.jkt if proof is not None else None,
        audience=check_resource(form.get("resource")),
    )
    jti = p.entropy.token(16)
    await p.audit_log.record(
        p.auditor.event(
            events.SERVICE_TOKEN_ISSUED,
            events.SUCCESS,
            meta,
            actor=client.client_id,
            client_id=client.client_id,
            kid=p.keys.ring.active.kid,
            data={"jti": jti, "scope": grant.scope, "dpop": proof is not None},
            at=now,
        )
    )
    return TokenResponse(
        access_token=mint_service_token(p.keys.ring, p.policy, grant, now, jti),
        expires_in=int(grant.ttl.total_seconds()),
        scope=grant.scope,
        token_type="DPoP" if proof is not None else "Bearer",
    )
