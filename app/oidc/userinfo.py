"""OpenID Connect Core 1.0 section 5.3 UserInfo: the claims about the wallet behind an access token."""

from __future__ import annotations

from typing import Any

from app.errors import InvalidToken
from app.policy import claims as released
from app.policy.model import Policy


def userinfo(claims: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """From a validated access token's claims; only tokens granted ``openid`` (a wallet sign-in) qualify.
    The compliance claim is answered only when a granted scope asks for it (section 5.4), as in the ID token.
    """
    scope = str(claims.get("scope", ""))
    if "openid" not in scope.split():
        raise InvalidToken("this access token was not granted the openid scope")
    answer = {
        "sub": claims["sub"],
        "wallet_address": claims.get("wallet_address"),
        "chain_id": claims.get("chain_id"),
    }
    carried = released.release(policy, scope, claims.get(released.COMPLIANCE)).id_token
    if carried is not None:
        answer[released.COMPLIANCE] = carried
    return answer
