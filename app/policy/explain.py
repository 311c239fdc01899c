"""A policy decision as text, rule by rule (``portcullis policy explain``; docs/POLICY.md, "Explain").

Pure: takes the decision and its policy, returns lines. Each requested item (scope, detail, part of a detail)
is shown with its verdict and every rule applied to it, then the outcome as the token endpoint would answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from app.policy.engine import PolicyDecision
from app.policy.facts import ComplianceFacts
from app.policy.model import Policy
from app.policy.requirements import Check, iso

WIDTH = 48


def explain(policy: Policy, decision: PolicyDecision, address: str, first: Sequence[str] = ()) -> list[str]:
    """The decision as lines of text; ``first`` are the steps before the policy (the chain's eligibility)."""
    lines = [f"policy   {policy.source} ({policy.digest[:19]}...)", f"account  {address}", *first]
    if decision.facts is not None:
        lines.append(f"facts    {describe_facts(decision.facts)}")
    if decision.auth is not None:
        age = decision.now - int(decision.auth.auth_time.timestamp())
        amr = f" (amr {', '.join(decision.auth.amr)})" if decision.auth.amr else ""
        lines.append(f"auth     {decision.auth.acr}{amr}, {age} s ago; {decision.client_kind} client")
    narrowed = {n.item for n in decision.narrowed} | {r.item for r in decision.refused}
    for item, checks in _grouped(decision.checks):
        status = _status(checks)
        if status == "granted" and any(n == item or n.startswith(item + ".") for n in narrowed):
            status = "granted (narrowed)"
        lines.append("")
        lines.append(f"{item:<{WIDTH}} {status.upper()}")
        for check in checks:
            mark = "pass" if check.passed else ("STEP" if check.auth else "FAIL")
            lines.append(f"  {mark}  {check.rule_id:<{WIDTH - 6}} {check.text}")
    lines.append("")
    lines += outcome_lines(decision)
    return lines


def outcome_lines(decision: PolicyDecision) -> list[str]:
    outcome = decision.outcome
    out = []
    if outcome == "step_up":
        assert decision.step_up is not None
        need = []
        if decision.step_up.acr_values:
            need.append(f'acr_values="{" ".join(decision.step_up.acr_values)}"')
        if decision.step_up.max_age is not None:
            need.append(f'max_age="{decision.step_up.max_age}"')
        out.append(f"outcome  step-up: 401 insufficient_user_authentication (RFC 9470), {', '.join(need)}")
    elif outcome == "deny":
        out.append("outcome  deny: 403 access_denied, nothing to issue")
    else:
        narrower = " (narrower than requested)" if decision.narrower_than_requested else ""
        out.append(f"outcome  issue{narrower}")
    out.append(f'scope    "{decision.scope}"')
    for detail in decision.granted_details:
        out.append(f"detail   {json.dumps(detail, separators=(',', ':'))}")
    lifetime = decision.max_token_lifetime
    out.append(f"lifetime {'no policy cap' if lifetime is None else f'at most {lifetime} s'}")
    return out


def describe_facts(facts: ComplianceFacts) -> str:
    if facts.source == "none":
        return "no compliance source"
    parts = []
    if facts.chain_id is not None:
        parts.append(f"chain {facts.chain_id} block {facts.block}")
    if facts.eligible_record:
        until = f" until {iso(facts.valid_until)}" if facts.valid_until is not None else ""
        parts.append(f"record active{until}")
    else:
        state = [s for s, on in (("revoked", facts.revoked), ("expired", facts.expired)) if on]
        parts.append("record " + (", ".join(state) if state else "not active or absent"))
    parts.append(f"residence {facts.residence or '?'}")
    parts.append(f"class {facts.investor_class or '?'}")
    parts.append(f"KYC {facts.kyc_level if facts.kyc_level is not None else '?'}")
    parts.append(f"AML {facts.aml_risk if facts.aml_risk is not None else '?'}")
    parts.append("flags " + (", ".join(sorted(facts.flags)) or "none"))
    parts.append("SANCTIONED" if facts.sanctioned else "not sanctioned")
    return "; ".join(parts)


def _grouped(checks: Sequence[Check]) -> list[tuple[str, list[Check]]]:
    groups: dict[str, list[Check]] = {}
    for check in checks:
        groups.setdefault(check.item, []).append(check)
    return list(groups.items())


def _status(checks: Sequence[Check]) -> str:
    failed = [c for c in checks if not c.passed]
    if any(not c.auth for c in failed):
        return "refused"
    if failed:
        return "step-up required"
    return "granted"
