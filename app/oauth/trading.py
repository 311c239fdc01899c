"""The trading policy as a grant condition (app.policy, docs/POLICY.md): what a token may say.

At sign-in the requested scopes and RFC 9396 authorization details are judged against the compliance facts
and the authentication; the token carries the granted (narrowed) subset, and a request that needs a
stronger authentication is answered with RFC 9470 ``insufficient_user_authentication``. At refresh the
family's original request is judged again on today's facts: access can only shrink with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from app.chain.types import ComplianceDecision
from app.errors import InvalidScope
from app.oauth.provider import Provider
from app.oauth.scope import parse_scope
from app.policy.engine import PolicyDecision, enforce, evaluate
from app.policy.facts import AuthContext, facts_from_decision


def requested_scopes(p: Provider, raw: str | None) -> list[str]:
    """``openid`` plus the requested scopes, each of which the policy must know (else invalid_scope)."""
    scopes = list(dict.fromkeys(["openid", *parse_scope(raw)]))
    known = set(p.trading_policy.scopes_supported("wallet"))
    unknown = [s for s in scopes if s not in known]
    if unknown:
        raise InvalidScope(f"scope not supported: {' '.join(unknown)[:200]}")
    return scopes


def decide(
    p: Provider,
    decision: ComplianceDecision | None,
    scopes: Sequence[str],
    details: Sequence[dict[str, Any]],
    auth: AuthContext,
    now: datetime,
) -> PolicyDecision:
    facts = facts_from_decision(decision, now)
    return evaluate(p.trading_policy, facts, scopes, details, auth, now, client_kind="wallet")


def for_sign_in(
    p: Provider,
    decision: ComplianceDecision | None,
    scopes: Sequence[str],
    details: Sequence[dict[str, Any]],
    auth: AuthContext,
    now: datetime,
) -> PolicyDecision:
    """The policy's answer, or its error: step-up (RFC 9470) or access_denied when nothing may be issued."""
    return enforce(decide(p, decision, scopes, details, auth, now))


def lifetime_cap(result: PolicyDecision, now: datetime) -> datetime | None:
    return now + timedelta(seconds=result.max_token_lifetime) if result.max_token_lifetime else None
