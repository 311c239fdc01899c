"""RFC 6749 section 5.1 successful token response, shared by sign-in and refresh."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.oauth.provider import Provider
from app.oidc.tokens import Grant, mint_access_token, mint_id_token


@dataclass(frozen=True, slots=True)
class TokenResponse:
    access_token: str
    expires_in: int
    id_token: str
    refresh_token: str
    scope: str
    authorization_details: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "id_token": self.id_token,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
        }
        if self.authorization_details:  # RFC 9396 section 7
            body["authorization_details"] = list(self.authorization_details)
        return body


def issue_tokens(
    p: Provider, grant: Grant, now: datetime, *, refresh_token: str, oidc_nonce: str | None, jti: str
) -> TokenResponse:
    ring = p.keys.ring
    access = mint_access_token(ring, p.policy, grant, now, jti=jti)
    id_token = mint_id_token(ring, p.policy, grant, now, access_token=access, oidc_nonce=oidc_nonce)
    return TokenResponse(
        access_token=access,
        expires_in=int((grant.expiry(now, p.policy.access_ttl) - now).total_seconds()),
        id_token=id_token,
        refresh_token=refresh_token,
        scope=grant.scope,
        authorization_details=grant.authorization_details,
    )
