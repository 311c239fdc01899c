"""OpenID Connect Core 1.0 section 5.3 UserInfo: the claims about the wallet behind an access token."""

from __future__ import annotations

from typing import Any

from app.errors import InvalidToken


def userinfo(claims: dict[str, Any]) -> dict[str, Any]:
    """From a validated access token's claims; only tokens granted ``openid`` (a wallet sign-in) qualify."""
    if "openid" not in str(claims.get("scope", "")).split():
        raise InvalidToken("this access token was not granted the openid scope")
    return {
        "sub": claims["sub"],
        "wallet_address": claims.get("wallet_address"),
        "chain_id": claims.get("chain_id"),
    }
