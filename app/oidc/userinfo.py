"""OpenID Connect Core 1.0 section 5.3 UserInfo: the claims about the wallet behind an access token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.oidc.keys import KeyRing
from app.oidc.tokens import TokenPolicy, validate_access_token


def userinfo(ring: KeyRing, policy: TokenPolicy, access_token: str, now: datetime) -> dict[str, Any]:
    claims = validate_access_token(ring, policy, access_token, now)
    return {
        "sub": claims["sub"],
        "wallet_address": claims.get("wallet_address"),
        "chain_id": claims.get("chain_id"),
    }
