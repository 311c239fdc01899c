"""On-chain compliance as a grant condition: a wallet signs in, and keeps refreshing, only while every
required source on its chain says yes (app.chain.reader); an unreadable required source fails closed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eth_utils.address import to_checksum_address

from app.audit import events
from app.chain import changes
from app.chain.access import ChainAccess
from app.chain.follower import ChainChange
from app.chain.types import ChainUnavailable, ComplianceDecision
from app.errors import SignInRejected, TemporarilyUnavailable
from app.oauth.provider import Provider
from app.oidc.tokens import did_pkh
from app.storage.records import AuditRecord, ChainEventKey, SubjectRevocation

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


class NotEligible(SignInRejected):
    """403 ``not_eligible``, with the failed sources' reasons (``no_record``, ``expired``, ``sanctioned``,
    ...) kept typed for the hosted page's wording (app.http.page_text)."""

    def __init__(self, decision: ComplianceDecision) -> None:
        super().__init__(NOT_ELIGIBLE, 403, refusal(decision))
        self.reasons = decision.reasons


def check_eligible(decision: ComplianceDecision | None) -> None:
    """The chain's eligibility rule as a sign-in condition, the first one after the signature: a wallet
    whose required sources say no is refused 403 ``not_eligible`` (``portcullis policy explain`` shows this
    same step before the policy's)."""
    if decision is not None and not decision.eligible:
        raise NotEligible(decision)


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


async def on_chain_change(p: Provider, change: ChainChange) -> None:
    """The log follower saw ``change``: record it (docs/AUDIT.md, "chain.change"), and end the wallet's
    sessions and its delegations to bots if it is no longer eligible (refresh is refused from then on;
    access tokens run out within their short life).

    Every replica's follower calls this for the same event. The entry, and the ending of sessions with its
    ``token.subject_revoked`` entry, are written in one transaction by the replica that first claims the
    event's key (app.storage.sql_chain_events); the others write nothing. Sessions live in the shared
    database, so ending them once ends them for every replica; each replica's own cached decision was
    already dropped by its follower. A decision that cannot be read still leaves the entry, then raises."""
    address = to_checksum_address(change.account)
    subject = did_pkh(change.chain_id, address)
    meta = events.RequestMeta()
    chain = p.chains.get(change.chain_id)
    if chain is None:
        data = changes.log_fields(change)
    else:
        data = await changes.describe(chain.rpc, change, chain.config.call_gas_cap)
    now = p.clock.now()
    entry = p.auditor.event(
        events.CHAIN_CHANGE, events.SUCCESS, meta, reason=change.event, actor=subject, data=data, at=now
    )
    failure: TemporarilyUnavailable | None = None
    reasons: list[str] = []
    if change.event in REVOKING_EVENTS:
        reasons = [change.event]
    else:
        try:
            decision = await decide(p, change.chain_id, address)
        except TemporarilyUnavailable as exc:
            failure, decision = exc, None
        if decision is not None and not decision.eligible:
            reasons = list(decision.reasons)
    revocation = None
    if reasons:
        revoked = p.auditor.event(
            events.SUBJECT_REVOKED,
            events.SUCCESS,
            meta,
            reason=NOT_ELIGIBLE,
            actor=subject,
            data={"event": change.event, "block": change.block, "reasons": reasons},
            at=now,
        )

        def delegation_revoked(delegation_id: str, jkt: str) -> AuditRecord:
            return p.auditor.event(
                events.DELEGATION_REVOKED,
                events.SUCCESS,
                meta,
                reason=NOT_ELIGIBLE,
                actor=subject,
                data={"delegation_id": delegation_id, "delegate_jkt": jkt, "event": change.event},
                at=now,
            )

        # The wallet's delegations to bots end in the same transaction (docs/DELEGATION.md).
        revocation = SubjectRevocation(subject, now, NOT_ELIGIBLE, revoked, delegation_revoked)
    key = ChainEventKey(
        chain_id=change.chain_id,
        transaction_hash=change.log.transaction_hash,
        log_index=change.log.log_index,
        account=address,
        event=change.event,
        block_number=change.log.block_number,
        block_hash=change.log.block_hash,
    )
    await p.store.record_chain_event(key, entry, revocation)
    if failure is not None:
        raise failure
