"""Risk-based step-up at sign-in (docs/RISK.md): score the sign-in from the audit log's history, then
allow it, demand a second factor, or refuse it. The decision goes into the audit entry; its level into
the tokens (``risk_level``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.audit import events
from app.errors import InsufficientUserAuthentication, SignInRejected
from app.mfa import acr
from app.oauth.provider import Provider
from app.risk.engine import RiskDecision, RiskSettings, assess
from app.risk.signals import RiskInput


async def assess_sign_in(
    p: Provider,
    subject: str,
    meta: events.RequestMeta,
    device_id: str | None,
    wallet_kind: str,
    compliance_claim: dict[str, Any] | None,
    now: datetime,
) -> RiskDecision:
    settings = RiskSettings(step_up_at=p.settings.risk_step_up_at, deny_at=p.settings.risk_deny_at)
    network = p.auditor.network(meta.ip)
    device = events.sha256_hex(device_id) if device_id else None
    history = await p.sign_in_history.summary(subject, network, device, now, settings.window)
    residence = compliance_claim.get("residence") if compliance_claim else None
    return assess(
        RiskInput(
            subject=subject,
            ip=meta.ip,
            network=network,
            device=device,
            wallet_kind="contract" if wallet_kind == "contract" else "eoa",
            residence=residence if isinstance(residence, str) else None,
            history=history,
            now=now,
        ),
        settings,
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
