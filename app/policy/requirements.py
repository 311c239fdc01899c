"""Policy requirements over compliance facts and authentication (docs/POLICY.md, "Requirements").

Each set requirement yields one ``Check`` with a stable rule id and a sentence that says what was found, so
``explain`` can show every rule and a refusal can say exactly why. Missing facts fail closed: an unknown KYC
level meets no minimum, an unknown residence is on no allow list and cannot be ruled out of a deny list.
The ``acr`` and ``max_auth_age`` checks are marked ``auth``: a stronger or fresher sign-in (RFC 9470 step-up)
can make them pass, nothing else can.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.policy.facts import AuthContext, ComplianceFacts
from app.policy.model import Flag, Policy, Requirements, ScopeRule


@dataclass(frozen=True, slots=True)
class Check:
    """One rule applied to one item: passed or not, and a sentence saying what was found."""

    item: str
    rule_id: str
    passed: bool
    text: str
    auth: bool = False  # an authentication-strength rule (acr, max_auth_age)
    acr: str | None = None  # what an acr rule asks for
    max_age: int | None = None  # what a max_auth_age rule asks for


@dataclass(frozen=True, slots=True)
class Refusal:
    """A requested item (scope, detail, or part of a detail) that is not granted, by which rule and why."""

    item: str
    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Narrowing:
    """A granted detail's field made narrower than requested, by which rule and why."""

    item: str
    rule_id: str
    reason: str


def verdict(checks: Iterable[Check]) -> tuple[str, Check | None]:
    """``granted``; ``refused`` with the first failed non-authentication check; or ``step_up`` when only
    authentication checks failed (a stronger or fresher sign-in would grant the item)."""
    failed = [c for c in checks if not c.passed]
    if not failed:
        return "granted", None
    hard = [c for c in failed if not c.auth]
    if hard:
        return "refused", hard[0]
    return "step_up", failed[0]


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_scope(
    policy: Policy,
    scope: ScopeRule,
    facts: ComplianceFacts,
    auth: AuthContext,
    now: datetime,
    client_kind: str,
    item: str,
) -> list[Check]:
    """Every rule of ``scope`` (client kind, requirements, matching ``when`` blocks) for ``item``."""
    base = f"scope/{scope.name}"
    ok = client_kind in scope.clients
    kinds = "/".join(sorted(scope.clients))
    checks = [
        Check(
            item,
            f"{base}/clients",
            ok,
            f"{client_kind} clients may hold {scope.name}"
            if ok
            else f"{scope.name} is only for {kinds} clients, not {client_kind} clients",
        )
    ]
    checks += check_requirements(policy, scope.requirements, facts, auth, now, item, base)
    for cond in scope.when:
        rule = f"{base}/when[{cond.id}]"
        if not cond.selector.matches(facts):
            checks.append(Check(item, rule, True, f"not applicable (applies to {cond.selector.describe()})"))
            continue
        for c in check_requirements(policy, cond.requirements, facts, auth, now, item, rule):
            text = c.text if c.passed or cond.reason is None else f"{c.text} ({cond.reason})"
            checks.append(Check(c.item, c.rule_id, c.passed, text, c.auth, c.acr, c.max_age))
    return checks


def check_requirements(
    policy: Policy,
    req: Requirements,
    facts: ComplianceFacts,
    auth: AuthContext,
    now: datetime,
    item: str,
    base: str,
) -> list[Check]:
    """One check per requirement that is set, in a fixed order (the first failure is the refusal's reason)."""
    out: list[Check] = []

    def add(key: str, passed: bool, text: str) -> None:
        out.append(Check(item, f"{base}/{key}", passed, text))

    if req.not_sanctioned:
        add(
            "not_sanctioned",
            not facts.sanctioned,
            "the account is sanctioned" if facts.sanctioned else "not sanctioned",
        )
    if req.require_record:
        add("require_record", _record_active(facts), _record_text(facts))
    if req.residence_allow is not None:
        res = facts.residence
        if res is None:
            add("residence_allow", False, "residence unknown; only listed residences are allowed")
        else:
            ok = res in req.residence_allow
            add(
                "residence_allow",
                ok,
                f"residence {res} is allowed" if ok else f"residence {res} is not allowed",
            )
    if req.residence_deny:
        res = facts.residence
        if res is None:
            add("residence_deny", False, "residence unknown; cannot rule out a denied residence")
        else:
            ok = res not in req.residence_deny
            add(
                "residence_deny", ok, f"residence {res} is not denied" if ok else f"residence {res} is denied"
            )
    if req.investor_classes is not None:
        allowed = ", ".join(req.investor_classes)
        cls = facts.investor_class
        if cls is None:
            add("investor_classes", False, f"investor class unknown; allowed: {allowed}")
        else:
            ok = cls in req.investor_classes
            text = (
                f"investor class {cls} is allowed"
                if ok
                else f"investor class {cls} is not allowed ({allowed} only)"
            )
            add("investor_classes", ok, text)
    if req.min_kyc_level is not None:
        lvl = facts.kyc_level
        if lvl is None:
            add("min_kyc_level", False, f"KYC level unknown; level {req.min_kyc_level} required")
        else:
            ok = lvl >= req.min_kyc_level
            rel = ">=" if ok else "is below"
            add("min_kyc_level", ok, f"KYC level {lvl} {rel} the required {req.min_kyc_level}")
    if req.required_flags:
        missing = _labels(f for f in req.required_flags if f.fact not in facts.flags)
        all_ = _labels(req.required_flags)
        add(
            "required_flags",
            not missing,
            f"missing required flag {missing}" if missing else f"has required flag {all_}",
        )
    if req.forbidden_flags:
        present = _labels(f for f in req.forbidden_flags if f.fact in facts.flags)
        add(
            "forbidden_flags",
            not present,
            f"forbidden flag {present} is set"
            if present
            else f"no forbidden flag ({_labels(req.forbidden_flags)})",
        )
    if req.max_aml_risk is not None:
        risk = facts.aml_risk
        if risk is None:
            add("max_aml_risk", False, f"AML risk unknown; at most {req.max_aml_risk} allowed")
        else:
            ok = risk <= req.max_aml_risk
            rel = "<=" if ok else "is above"
            add("max_aml_risk", ok, f"AML risk {risk} {rel} the maximum {req.max_aml_risk}")
    if req.acr is not None:
        ok = policy.acr_rank(auth.acr) >= policy.acr_rank(req.acr)
        text = (
            f"authentication {auth.acr} meets {req.acr}"
            if ok
            else f"authentication {auth.acr} is weaker than the required {req.acr}"
        )
        out.append(Check(item, f"{base}/acr", ok, text, auth=True, acr=req.acr))
    if req.max_auth_age is not None:
        age = int((now - auth.auth_time).total_seconds())
        ok = age <= req.max_auth_age
        rel = "<=" if ok else "is more than"
        text = f"authenticated {age} s ago, {rel} {req.max_auth_age} s"
        out.append(Check(item, f"{base}/max_auth_age", ok, text, auth=True, max_age=req.max_auth_age))
    return out


def _labels(flags: Iterable[Flag]) -> str:
    return ", ".join(f.label for f in flags)


def _record_active(facts: ComplianceFacts) -> bool:
    return facts.eligible_record and not (facts.revoked or facts.expired or "frozen" in facts.flags)


def _record_text(facts: ComplianceFacts) -> str:
    if facts.source == "none":
        return "no compliance source for this account's chain; a compliance record is required"
    if facts.revoked:
        return "the compliance record is revoked"
    if facts.expired:
        until = f" at {iso(facts.valid_until)}" if facts.valid_until is not None else ""
        return f"the compliance record expired{until}"
    if "frozen" in facts.flags:
        return "the account is frozen"
    if not facts.eligible_record:
        if facts.investor_class is None and facts.kyc_level is None:
            return "no compliance record for this account"
        return "the compliance record is not active"
    until = f" until {iso(facts.valid_until)}" if facts.valid_until is not None else ""
    return f"active compliance record{until}"
