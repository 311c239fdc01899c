"""On-chain compliance as a grant condition: a wallet signs in, and keeps refreshing, only while every
required source on its chain says yes (app.chain.reader); an unreadable required source fails closed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.chain.types import ChainUnavailable, ComplianceDecision
from app.errors import SignInRejected, TemporarilyUnavailable
from app.oauth.provider import Provider

NOT_ELIGIBLE = "not_eligible"


async def decide(p: Provider, chain_id: int, address: str) -> ComplianceDecision | None:
    """The decision for ``address``, or None on a chain without compliance sources."""
    chain = p.chains.get(chain_id)
    if chain is None or chain.reader is None:
        return None
    try:
        return await chain.reader.decide(address)
    except ChainUnavailable as exc:
        raise TemporarilyUnavailable(
            f"chain {chain_id}: the compliance sources cannot be read; try again later", debug=str(exc)
        ) from None


def refusal(decision: ComplianceDecision) -> str:
    return f"not eligible on chain {decision.chain_id} (block {decision.block_number}): " + ", ".join(
        decision.reasons
    )


async def require_eligible(p: Provider, chain_id: int, address: str) -> ComplianceDecision | None:
    decision = await decide(p, chain_id, address)
    if decision is not None and not decision.eligible:
        raise SignInRejected(NOT_ELIGIBLE, 403, refusal(decision))
    return decision


def not_after(decision: ComplianceDecision | None) -> datetime | None:
    """When the decision stops holding: the registry record's validUntil (None without a record)."""
    if decision is None or decision.record is None or not decision.record.valid_until:
        return None
    return datetime.fromtimestamp(decision.record.valid_until, UTC)
