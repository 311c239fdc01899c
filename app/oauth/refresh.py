"""RFC 6749 section 6 refresh with rotation (RFC 9700 section 4.14.2): a rotated token used again revokes
its whole family. The family keeps its absolute expiry; a refresh may narrow the scope, never widen it.
"""

from __future__ import annotations

from app.errors import InvalidGrant, InvalidRequest
from app.oauth.provider import Provider, secret_hash
from app.oauth.scope import narrow_scope
from app.oauth.tokens import TokenResponse, issue_tokens
from app.oidc.tokens import Grant
from app.storage.records import RefreshRecord, RefreshUnavailable

MAX_REFRESH_TOKEN = 512

_REASONS = {
    "unknown": "the refresh token is unknown",
    "reused": "the refresh token was already used; its token family has been revoked",
    "revoked": "the refresh token has been revoked",
    "expired": "the refresh token has expired",
    "other_client": "the refresh token was issued to another client",
}


async def refresh(p: Provider, token: str | None, client_id: str | None, scope: str | None) -> TokenResponse:
    if not token:
        raise InvalidRequest("refresh_token is required")
    if len(token) > MAX_REFRESH_TOKEN:
        raise InvalidGrant("the refresh token is unknown")
    client = p.check_client(client_id)
    now = p.clock.now()
    successor = p.entropy.token(32)
    try:
        record = await p.store.rotate_refresh(
            secret_hash(token), client, secret_hash(successor), now, check=lambda old: _scope_ok(scope, old)
        )
    except RefreshUnavailable as exc:
        raise InvalidGrant(_REASONS[exc.reason]) from None
    grant = Grant(
        address=record.address,
        chain_id=record.chain_id,
        client_id=record.client_id,
        scope=narrow_scope(scope, record.scope),
        auth_time=record.auth_time,
    )
    return issue_tokens(p, grant, now, refresh_token=successor, oidc_nonce=None)


def _scope_ok(requested: str | None, old: RefreshRecord) -> None:
    narrow_scope(requested, old.scope)
