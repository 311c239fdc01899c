"""Delegations to trading bots (docs/DELEGATION.md): a wallet signs an EIP-4361 message whose EIP-5573 ReCap
names Portcullis capabilities, and whose ``URI`` names the bot's key as an RFC 9278 JWK Thumbprint URI.

The capabilities profile (``capabilities``): ``urn:portcullis:scope:<scope>`` with the ability
``oauth/token`` asks for a scope; ``urn:portcullis:authorization_details:<type>`` with abilities
``<type>/<action>`` (``withdrawal/withdraw`` for withdrawals), each with the same one nota bene object
(the RFC 9396 detail's other fields), asks for one detail of that type. Anything else is refused.

What a delegation grants is decided by ``judge``, the trading policy's one rule (``trading.decide``) on the
wallet's compliance facts now: at creation, and again at every bot token, so a policy or registry change
narrows a live delegation at its next token. It never grants more than what was signed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from app import siwe
from app.audit import events
from app.chain.types import ComplianceDecision
from app.errors import AccessDenied, InvalidRequest, NotFound, OAuthError, SignInRejected
from app.oauth import compliance, signin, trading
from app.oauth.provider import Provider
from app.oidc.tokens import did_pkh
from app.policy.engine import PolicyDecision
from app.policy.facts import AuthContext
from app.policy.rar import parse_authorization_details
from app.siwe import recap as recaps
from app.siwe.message import Timeline
from app.storage.delegation_records import DelegationExists, DelegationRecord
from app.storage.records import AuditRecord

SCOPE_RESOURCE = "urn:portcullis:scope:"
DETAILS_RESOURCE = "urn:portcullis:authorization_details:"
TOKEN_ABILITY = "oauth/token"  # noqa: S105 (an ability name)
WITHDRAW_ACTION = "withdraw"
# RFC 9278: the JWK Thumbprint URI of an RFC 7638 SHA-256 thumbprint.
JKT_URI_PREFIX = "urn:ietf:params:oauth:jwk-thumbprint:sha-256:"
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_DELEGATIONS_LISTED = 1000


def jkt_uri(jkt: str) -> str:
    return JKT_URI_PREFIX + jkt


def delegate_of(uri: str) -> str:
    """The RFC 7638 thumbprint the message's ``URI`` names (RFC 9278), or a typed refusal."""
    jkt = uri.removeprefix(JKT_URI_PREFIX)
    if not uri.startswith(JKT_URI_PREFIX) or not _JKT.fullmatch(jkt):
        raise SignInRejected(
            "invalid_delegate", 400, f"uri: must name the bot's key as {JKT_URI_PREFIX}<RFC 7638 thumbprint>"
        )
    return jkt


def recap_for(scopes: list[str], details: list[dict[str, Any]]) -> recaps.Recap:
    """The ReCap asking for ``scopes`` and ``details`` (one detail per type), in this module's profile."""
    att: dict[str, dict[str, tuple[dict[str, Any], ...]]] = {}
    for scope in scopes:
        att[SCOPE_RESOURCE + scope] = {TOKEN_ABILITY: ({},)}
    for detail in details:
        kind = detail["type"]
        if DETAILS_RESOURCE + kind in att:
            raise InvalidRequest(f"at most one authorization detail of type {kind} per delegation")
        note = {k: v for k, v in detail.items() if k not in ("type", "actions")}
        actions = detail.get("actions", [WITHDRAW_ACTION])
        att[DETAILS_RESOURCE + kind] = {f"{kind}/{a}": (note,) for a in actions}
    return recaps.decode_uri(recaps.encode_uri(_unsafe(att)))  # ordered and checked as a parser sees it


def _unsafe(att: dict[str, dict[str, tuple[dict[str, Any], ...]]]) -> recaps.Recap:
    frozen = {r: MappingProxyType(dict(a)) for r, a in att.items()}
    return recaps.Recap(MappingProxyType(frozen))


def capabilities(recap: recaps.Recap) -> tuple[list[str], list[dict[str, Any]]]:
    """The scopes and RFC 9396 details a ReCap asks for (this module's profile, strictly)."""
    scopes: list[str] = []
    details: list[dict[str, Any]] = []
    for resource, abilities in recap.att.items():
        if resource.startswith(SCOPE_RESOURCE):
            if dict(abilities) != {TOKEN_ABILITY: ({},)}:
                raise _invalid(f"{resource}: the only ability is {TOKEN_ABILITY} with [{{}}]")
            scopes.append(resource[len(SCOPE_RESOURCE) :])
        elif resource.startswith(DETAILS_RESOURCE):
            details.append(_detail(resource[len(DETAILS_RESOURCE) :], dict(abilities)))
        else:
            raise _invalid(f"{resource[:80]}: not a Portcullis capability (docs/DELEGATION.md)")
    try:
        parsed = parse_authorization_details(details)
    except OAuthError as exc:
        raise _invalid(f"authorization details: {exc.description}") from None
    if not scopes and not parsed:
        raise _invalid("the ReCap asks for no scope and no authorization detail")
    return scopes, parsed


def _detail(kind: str, abilities: dict[str, tuple[dict[str, Any], ...]]) -> dict[str, Any]:
    notes = {json.dumps(n, sort_keys=True) for nbs in abilities.values() for n in nbs}
    if any(len(nbs) != 1 for nbs in abilities.values()) or len(notes) != 1:
        raise _invalid(f"{kind}: every ability needs the same one nota bene object (the detail's limits)")
    actions = []
    for ability in abilities:
        namespace, _, action = ability.partition("/")
        if namespace != kind:
            raise _invalid(f"{kind}: ability {ability!r} is not of namespace {kind}")
        actions.append(action)
    note = dict(next(iter(abilities.values()))[0])
    if kind == "withdrawal":
        if actions != [WITHDRAW_ACTION]:
            raise _invalid("withdrawal: the only ability is withdrawal/withdraw")
        return {"type": kind, **note}
    return {"type": kind, "actions": actions, **note}


def _invalid(why: str) -> SignInRejected:
    return SignInRejected(recaps.InvalidRecap.code, 400, why)


def judge(
    p: Provider,
    decision: ComplianceDecision | None,
    record: DelegationRecord,
    now: datetime,
) -> PolicyDecision:
    """What the delegation grants now: the trading policy's decision (``trading.decide``, the rule sign-in
    and refresh apply) on what was signed, authenticated by the wallet's signature at creation."""
    auth = AuthContext(acr="urn:portcullis:acr:wallet", amr=("siwe",), auth_time=record.created_at)
    return trading.decide(
        p, decision, record.scope.split(), json.loads(record.authorization_details), auth, now
    )


def refusals(ruling: PolicyDecision) -> list[dict[str, str]]:
    return [{"item": r.item, "rule_id": r.rule_id, "reason": r.reason} for r in ruling.refused]


def check_grants_something(ruling: PolicyDecision) -> None:
    if not ruling.granted_scopes and not ruling.granted_details:
        reasons = "; ".join(f"{r.item}: {r.reason}" for r in ruling.refused) or "nothing was asked"
        why = f"the trading policy grants this wallet none of the delegated access ({reasons})"
        raise AccessDenied(why[:500])


def _check_message(p: Provider, text: str, now: datetime) -> tuple[siwe.SiweMessage, Timeline]:
    """EIP-4361 by the strict parser and field checks of sign-in; the ``URI`` is the delegate, not ours."""
    try:
        message = siwe.parse(text, max_bytes=p.settings.max_message_bytes)
        siwe.check_fields(message, dataclasses.replace(signin.expectations(p), uri=None), now)
    except siwe.SiweError as exc:
        raise SignInRejected(exc.code, exc.status, str(exc)) from None
    times = message.timeline()
    if times.expiration_time is None:
        raise SignInRejected("invalid_delegation", 400, "expiration time: a delegation needs one")
    longest = timedelta(seconds=p.settings.delegation_max_seconds)
    if times.expiration_time - times.issued_at > longest:
        why = f"expiration time: at most {longest.days} days after issued at (policy)"
        raise SignInRejected("invalid_delegation", 400, why)
    return message, times


async def create(p: Provider, text: str, signature: str, meta: events.RequestMeta) -> dict[str, Any]:
    """POST /delegations: every check, then the row and its ``delegation.created`` entry; any refusal is a
    ``delegation.refused`` entry naming the check."""
    now = p.clock.now()
    seen: dict[str, Any] = {}
    try:
        return await _create(p, text, signature, meta, now, seen)
    except OAuthError as exc:
        await record_refusal(
            p, meta, exc, now, seen.get("subject"), check="create", delegate_jkt=seen.get("jkt")
        )
        raise


async def record_refusal(
    p: Provider,
    meta: events.RequestMeta,
    exc: OAuthError,
    now: datetime,
    subject: str | None,
    **data: Any,
) -> None:
    """The ``delegation.refused`` entry of a refused creation or bot token: the error, the failed check and
    what is known of the delegation (``data``)."""
    await p.audit_log.record(
        p.auditor.event(
            events.DELEGATION_REFUSED,
            events.FAILURE,
            meta,
            reason=exc.error,
            actor=subject,
            data={"detail": exc.description[:300], **data},
            at=now,
        )
    )


async def _create(
    p: Provider, text: str, signature: str, meta: events.RequestMeta, now: datetime, seen: dict[str, Any]
) -> dict[str, Any]:
    message, times = _check_message(p, text, now)
    seen["subject"] = subject = did_pkh(message.chain_id, message.address)
    seen["jkt"] = jkt = delegate_of(message.uri)
    try:
        recap = recaps.extract(message.statement, message.resources or ())
    except recaps.InvalidRecap as exc:
        raise _invalid(str(exc)) from None
    scopes, details = capabilities(recap)
    known = set(p.trading_policy.scopes_supported("wallet"))
    unknown = [s for s in scopes if s not in known]
    if unknown:
        raise _invalid(f"scope not supported: {' '.join(unknown)[:200]}")
    await signin.check_signature(p, text, message, signature)
    decision = await compliance.require_eligible(p, message.chain_id, message.address)
    message_hash = hashlib.sha256(text.encode()).hexdigest()
    record = DelegationRecord(
        delegation_id=p.entropy.token(16),
        message_hash=message_hash,
        subject=subject,
        address=message.address,
        chain_id=message.chain_id,
        delegate_jkt=jkt,
        scope=" ".join(scopes),
        authorization_details=json.dumps(details, sort_keys=True),
        message=text,
        created_at=now,
        expires_at=times.expiration_time or now,
        not_before=times.not_before,
    )
    ruling = judge(p, decision, record, now)
    check_grants_something(ruling)
    audit = p.auditor.event(
        events.DELEGATION_CREATED,
        events.SUCCESS,
        meta,
        actor=subject,
        data={
            "delegation_id": record.delegation_id,
            "delegate_jkt": jkt,
            "scope": record.scope,
            "expires_at": events.ts_ms(record.expires_at),
            "policy": ruling.to_audit(),
        },
        at=now,
    )
    try:
        await p.delegations.create(record, audit)
    except DelegationExists:
        raise SignInRejected("invalid_delegation", 409, "this signed message was registered before") from None
    return describe(record, now, ruling)


def describe(record: DelegationRecord, now: datetime, ruling: PolicyDecision | None = None) -> dict[str, Any]:
    """A delegation as the API shows it (docs/API.md)."""
    body: dict[str, Any] = {
        "delegation_id": record.delegation_id,
        "subject": record.subject,
        "delegate": jkt_uri(record.delegate_jkt),
        "delegate_jkt": record.delegate_jkt,
        "scope": record.scope,
        "authorization_details": json.loads(record.authorization_details),
        "created_at": int(record.created_at.timestamp()),
        "expires_at": int(record.expires_at.timestamp()),
        "state": record.state(now),
    }
    if record.not_before is not None:
        body["not_before"] = int(record.not_before.timestamp())
    if record.revoked_at is not None:
        body["revoked_at"] = int(record.revoked_at.timestamp())
        body["revoked_reason"] = record.revoked_reason
    if ruling is not None:
        body["granted"] = {
            "scope": ruling.scope,
            "authorization_details": list(ruling.granted_details),
            "refused": refusals(ruling),
            "narrowed": [{"item": n.item, "rule_id": n.rule_id, "reason": n.reason} for n in ruling.narrowed],
        }
    return body


async def list_own(p: Provider, subject: str) -> list[dict[str, Any]]:
    now = p.clock.now()
    return [describe(r, now) for r in await p.delegations.for_subject(subject)]


def revocation_entry(
    p: Provider,
    meta: events.RequestMeta,
    record_id: str,
    jkt: str,
    reason: str,
    actor: str | None,
    now: datetime,
) -> AuditRecord:
    return p.auditor.event(
        events.DELEGATION_REVOKED,
        events.SUCCESS,
        meta,
        reason=reason,
        actor=actor,
        data={"delegation_id": record_id, "delegate_jkt": jkt},
        at=now,
    )


async def revoke(
    p: Provider, delegation_id: str, meta: events.RequestMeta, *, subject: str | None, reason: str
) -> DelegationRecord:
    """Revoke one delegation: the wallet's own (``subject``), or any (the operator, ``subject`` None)."""
    now = p.clock.now()
    record = await p.delegations.get(delegation_id)
    if record is None or (subject is not None and record.subject != subject):
        raise NotFound("no such delegation of this wallet")
    audit = revocation_entry(p, meta, record.delegation_id, record.delegate_jkt, reason, subject, now)
    if not await p.delegations.revoke(delegation_id, now, reason, audit, subject=subject):
        raise SignInRejected("invalid_delegation", 409, "the delegation was already revoked")
    return dataclasses.replace(record, revoked_at=now, revoked_reason=reason)
