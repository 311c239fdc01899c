"""RFC 7009 section 2.1 and RFC 7662 section 2.2: whether an access token we issued is still live.

One rule for every place that accepts or describes an access token (userinfo, introspection): a token is
live while its signature, type, issuer, audience and expiry hold (RFC 9068 section 4), its session (the
refresh-token family named by ``sid``) has not been revoked, logged out or ended for reuse, a bot's
delegation (``delegation_id``, docs/DELEGATION.md) is still live, the registry
record it was issued under has not passed its ``valid_until``, and, on a chain with compliance sources, its
wallet is still eligible. Anything else raises :class:`InvalidToken`; an unreadable chain raises
``TemporarilyUnavailable`` (fail closed, never "live").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.errors import InvalidToken
from app.oauth import compliance
from app.oauth.provider import Provider
from app.oidc.tokens import validate_access_token


async def live_claims(p: Provider, token: str, *, any_audience: bool = False) -> dict[str, Any]:
    """The claims of ``token`` if it is live now; else InvalidToken saying why.

    Cheap checks come first: the signature and the token's own claims, then the database, then the chain.
    """
    now = p.clock.now()
    claims = validate_access_token(p.keys.ring, p.policy, token, now, any_audience=any_audience)
    check_valid_until(claims, now)
    sid = claims.get("sid")
    if isinstance(sid, str) and not await p.store.family_active(sid, now):
        raise InvalidToken("the access token has been revoked (its session has ended)")
    delegation = claims.get("delegation_id")
    if delegation is not None and not (
        isinstance(delegation, str) and await p.delegations.active(delegation, now)
    ):
        raise InvalidToken("the access token's delegation has been revoked or has expired")
    chain_id, address = claims.get("chain_id"), claims.get("wallet_address")
    if isinstance(chain_id, int) and isinstance(address, str):
        decision = await compliance.decide(p, chain_id, address)
        if decision is not None and not decision.eligible:
            raise InvalidToken(f"the wallet is no longer eligible on chain {chain_id}")
    return claims


def check_valid_until(claims: dict[str, Any], now: datetime) -> None:
    """No token outlives the registry record it was issued under (its ``compliance.valid_until``)."""
    claim = claims.get("compliance")
    until = claim.get("valid_until") if isinstance(claim, dict) else None
    if isinstance(until, int) and not now.timestamp() < until:
        raise InvalidToken("the compliance record the access token was issued under is no longer valid")
