"""RFC 6749 section 5.1 successful token response, shared by every grant."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from app.oauth.provider import Provider
from app.oidc.tokens import Grant, mint_access_token, mint_id_token
from app.policy import claims


@dataclass(frozen=True, slots=True)
class TokenResponse:
    access_token: str
    expires_in: int
    scope: str
    id_token: str | None = None
    refresh_token: str | None = None
    authorization_details: tuple[dict[str, Any], ...] = ()
    # RFC 9449 section 5: "DPoP" when the access token is bound to a key.
    token_type: str = "Bearer"  # noqa: S105 (a token type, not a secret)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }
        if self.id_token is not None:
            body["id_token"] = self.id_token
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        body["scope"] = self.scope
        if self.authorization_details:  # RFC 9396 section 7
            body["authorization_details"] = list(self.authorization_details)
        return body


def issue_tokens(
    p: Provider,
    grant: Grant,
    now: datetime,
    *,
    refresh_token: str | None,
    oidc_nonce: str | None,
    jti: str,
    access_ttl: timedelta | None = None,
) -> TokenResponse:
    ring = p.keys.ring
    policy = (
        p.policy if access_ttl is None else replace(p.policy, access_ttl=min(access_ttl, p.policy.access_ttl))
    )
    # The grant holds the decision's whole claim; each token carries only what the granted scopes ask for.
    carried = claims.release(p.trading_policy, grant.scope, grant.compliance)
    access = mint_access_token(ring, policy, replace(grant, compliance=carried.access_token), now, jti=jti)
    id_token = mint_id_token(
        ring,
        policy,
        replace(grant, compliance=carried.id_token),
        now,
        access_token=access,
        oidc_nonce=oidc_nonce,
    )
    return TokenResponse(
        access_token=access,
        expires_in=int((grant.expiry(now, policy.access_ttl) - now).total_seconds()),
        id_token=id_token,
        refresh_token=refresh_token,
        scope=grant.scope,
        authorization_details=grant.authorization_details,
        token_type="DPoP" if grant.cnf_jkt is not None else "Bearer",
    )
