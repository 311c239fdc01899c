"""Presenting an access token to our own resources (userinfo): RFC 6750 Bearer and RFC 9449 section 7 DPoP.

A token bound to a key (``cnf.jkt``) is accepted only with the ``DPoP`` scheme and a proof by that key
whose ``ath`` is the token's hash; presented as a Bearer token it is refused (section 7.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.errors import InvalidToken, MissingToken
from app.oauth import dpop, liveness
from app.oauth.dpop import InvalidDpopProof
from app.oauth.provider import Provider


async def access_claims(
    p: Provider, authorization: str | None, dpop_values: Sequence[str], *, method: str, path: str
) -> dict[str, Any]:
    scheme, _, value = (authorization or "").partition(" ")
    token = value.strip()
    kind = scheme.lower()
    if kind not in ("bearer", "dpop") or not token:
        raise MissingToken("an access token is required (RFC 6750 Bearer or RFC 9449 DPoP)")
    # The same rule introspection applies: revoked, logged-out, reuse-ended and ineligible tokens are dead.
    claims = await liveness.live_claims(p, token)
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if kind == "bearer":
        if jkt is not None:
            raise InvalidToken("this access token is bound to a DPoP key: present it with the DPoP scheme")
        return claims
    if jkt is None:
        raise InvalidToken("this access token is not DPoP-bound: present it with the Bearer scheme")
    proof = await dpop.verify_proof(
        dpop.single_proof(dpop_values),
        method=method,
        url=f"{p.settings.issuer}{path}",
        now=p.clock.now(),
        jti_store=p.dpop_jtis,
        access_token=token,
    )
    if proof.jkt != jkt:
        raise InvalidDpopProof(
            "the DPoP proof was made with another key than the token is bound to", resource_server=True
        )
    return claims
