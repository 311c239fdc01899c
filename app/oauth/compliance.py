"""On-chain compliance as a grant condition: a wallet signs in, and keeps refreshing, only while every
required source on its chain says yes (app.chain.reader); an unreadable required source fails closed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eth_utils.address import to_checksum_address

from app.audit import events
from app.chain.access import ChainAccess
from app.chain.types import ChainUnavailable, ComplianceDecision
from app.errors import SignInRejected, TemporarilyUnavailable
from app.oauth.provider import Provider
from app.oidc.tokens import did_pkh

NOT_ELIGIBLE = "not_eligible"


async def decide(p: Provider, chain_id: int, address: str) -> ComplianceDecision | None:
    """The decision for ``address``, or None on a chain without compliance sources."""
    return await decide_on(p.chains, chain_id, address)


async def decide_on(chains: ChainAccess, chain_id: int, address: str) -> ComplianceDecision | None:
    """``decide`` on any ChainAccess: the server's, or the one ``portcullis policy explain`` builds."""
    chain = chains.get(chain_id)
    if chain is None or chain.reader is None:
        return None
    try:
        return await chain.reader.decide(address)
    except ChainUnavailable as exc:
        raise TemporarilyUnavailable(
            f"chain {chain_id}: the compliance sources cannot be read; try again later", debug=str(exc)
        ) from None


# The claim of every token when the operator runs without the gate (PORTCULLIS_COMPLIANCE=off).
NO_SOURCE_CLAIM: dict[str, Any] = {"source": "none"}


def token_claim(p: Provider, decision: ComplianceDecision | None) -> dict[str, Any] | None:
    """The ``compliance`` claim of a token: the decision's, or ``{"source": "none"}`` when compliance is off
    (so a resource server can tell "no gate" from "gate passed"); None on a chain without sources."""
    if p.settings.compliance == "off":
        return dict(NO_SOURCE_CLAIM)
    return decision.claim() if decision is not None else None


def refusal(decision: ComplianceDecision) -> str:
    return f"not eligible on chain {decision.chain_id} (block {decision.block_number}): " + ", ".join(
        decision.reasons
    )


def check_eligible(decision: ComplianceDecision | None) -> None:
    """The chain's eligibility rule as a sign-in condition, the first one after the signature: a wallet
    whose required sources say no is refused 403 ``not_eligible`` (``portcullis policy explain`` shows this
    same step before the policy's)."""
    if decision is not None and not decision.eligible:
        raise SignInRejected(NOT_ELIGIBLE, 403, refusal(decision))


async def require_eligible(p: Provider, chain_id: int, address: str) -> ComplianceDecision | None:
    decision = await decide(p, chain_id, address)
    check_eligible(decision)
    return decision


def not_after(decision: ComplianceDecision | None) -> datetime | None:
    """When the decision stops holding: the registry record's validUntil (None without a record)."""
    if decision is None or decision.record is None or not decision.record.valid_until:
        return None
    return datetime.fromtimestamp(decision.record.valid_until, UTC)


# Events that take eligibility away by themselves: sessions end without waiting for a read.
REVOKING_EVENTS = frozenset(
    {"RecordRevoked", "RecordFrozen", "SanctionedAddressesAdded", "IdentityRemoved", "Revoked"}
)


async def on_chain_change(p: Provider, chain_id: int, account: str, event: str, block: int) -> None:
    """The log follower saw ``event`` for ``account``: record it, and end the wallet's sessions if it is
    no longer eligible (refresh is refused from then on; access tokens run out within their short life)."""
    address = to_checksum_address(account)
    subject = did_pkh(chain_id, address)
    meta = events.RequestMeta()
    await p.audit_log.record(
        p.auditor.event(
            events.CHAIN_CHANGE, events.SUCCESS, meta, reason=event, actor=subject, data={"block": block}
        )
    )
    if event in REVOKING_EVENTS:
        reasons = [event]
    else:
        decision = await decide(p, chain_id, address)
        if decision is None or decision.eligible:
            return
        reasons = list(decision.reasons)
    now = p.clock.now()
    audit = p.auditor.event(
        events.SUBJECT_REVOKED,
        events.SUCCESS,
        meta,
        reason=NOT_ELIGIBLE,
        actor=subject,
        data={"event": event, "block": block, "reasons": reasons},
        at=now,
    )
    await p.store.revoke_subject(subject, now, NOT_ELIGIBLE, audit)
