"""Risk-based step-up at sign-in (docs/RISK.md): score the sign-in from the audit log's history, then
allow it, demand a second factor, or refuse it. The decision goes into the audit entry; its level into
the tokens (``risk_level``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.audit import events
from app.errors import InsufficientUserAuthentication, SignInRejected
from app.mfa import acr
from app.oauth.provider import Provider
from app.risk.engine import RiskDecision, RiskSettings, assess
from app.risk.history import HistorySummary
from app.risk.signals import RiskInput


@dataclass(frozen=True, slots=True)
class PendingAssessment:
    """A sign-in's risk assessment whose history read is under way."""

    subject: str
    ip: str | None
    network: str | None
    device: str | None
    now: datetime
    settings: RiskSettings
    history: asyncio.Future[HistorySummary]


def begin_assessment(
    p: Provider, subject: str, meta: events.RequestMeta, device_id: str | None, now: datetime
) -> PendingAssessment:
    """Start reading the subject's sign-in history now, so the read runs while the caller checks the
    signature and the chain. A read nobody awaits (the sign-in failed first) ends on its own."""
    settings = RiskSettings(step_up_at=p.settings.risk_step_up_at, deny_at=p.settings.risk_deny_at)
    network = p.auditor.network(meta.ip)
    device = events.sha256_hex(device_id) if device_id else None
    read = asyncio.ensure_future(p.sign_in_history.summary(subject, network, device, now, settings.window))
    read.add_done_callback(_retrieve)
    return PendingAssessment(subject, meta.ip, network, device, now, settings, read)


def _retrieve(read: asyncio.Future[HistorySummary]) -> None:
    if not read.cancelled():
        read.exception()  # a failed read that no sign-in awaited is not an asyncio warning


async def assess_sign_in(
    p: Provider, pending: PendingAssessment, wallet_kind: str, compliance_claim: dict[str, Any] | None
) -> RiskDecision:
    history = await pending.history
    residence = compliance_claim.get("residence") if compliance_claim else None
    return assess(
        RiskInput(
            subject=pending.subject,
            ip=pending.ip,
            network=pending.network,
            device=pending.device,
            wallet_kind="contract" if wallet_kind == "contract" else "eoa",
            residence=residence if isinstance(residence, str) else None,
            history=history,
            now=pending.now,
        ),
        pending.settings,
        p.ip_country,
    )


async def enforce(p: Provider, decision: RiskDecision, subject: str, session_acr: str) -> None:
    """deny refuses; step_up demands wallet+mfa from a subject that has a factor to give (a subject
    without one cannot step up: the sign-in goes on, and the audit entry says so)."""
    if decision.action == "deny":
        raise SignInRejected("access_denied", 403, "the sign-in was refused by the risk assessment")
    stepping_up = decision.action == "step_up" and session_acr != acr.ACR_WALLET_MFA
    if stepping_up and await p.mfa.has_second_factor(subject):
        raise InsufficientUserAuthentication(
            "this sign-in looks unusual: sign in again with a second factor", acr_values=(acr.ACR_WALLET_MFA,)
        )
