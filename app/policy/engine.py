"""The policy decision: which of the requested scopes and RFC 9396 authorization details a holder gets.

``evaluate`` is pure: (policy, compliance facts, request, authentication, now) -> ``PolicyDecision``. Any deny
wins: an item is granted only when every rule that applies to it passes. Refused items are dropped with a
reason (RFC 6749 section 3.3: the server may issue a narrower scope than asked and says so in the ``scope``
response parameter). The request fails as a whole only when ``openid`` was asked and refused, or nothing at
all can be granted (``access_denied``). When an item is refused for its authentication strength alone (``acr``
or ``max_auth_age``), the answer is the RFC 9470 step-up error instead of a partial grant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from app.policy.errors import InsufficientUserAuthentication, PolicyDenied
from app.policy.facts import AuthContext, ComplianceFacts
from app.policy.model import Policy
from app.policy.narrowing import narrow_detail
from app.policy.rar import parse_detail
from app.policy.requirements import Check, Narrowing, Refusal, check_scope, verdict

__all__ = ["Check", "Narrowing", "PolicyDecision", "Refusal", "StepUp", "enforce", "evaluate"]

Outcome = Literal["issue", "step_up", "deny"]


@dataclass(frozen=True, slots=True)
class StepUp:
    """RFC 9470 section 3: the authentication the refused items need (acceptable ``acr_values``, weakest
    first, and/or the ``max_age`` in seconds)."""

    acr_values: tuple[str, ...]
    max_age: int | None

    def error(self) -> InsufficientUserAuthentication:
        return InsufficientUserAuthentication(
            "a stronger or more recent authentication is required for the requested access",
            acr_values=self.acr_values,
            max_age=self.max_age,
        )


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """The granted subset of a request, a reason per refused item, and the inputs that led to it."""

    granted_scopes: tuple[str, ...]
    granted_details: tuple[dict[str, Any], ...]
    refused: tuple[Refusal, ...]
    max_token_lifetime: int | None
    step_up: StepUp | None
    narrowed: tuple[Narrowing, ...] = ()
    checks: tuple[Check, ...] = ()
    requested_scopes: tuple[str, ...] = ()
    requested_details: tuple[dict[str, Any], ...] = ()
    facts: ComplianceFacts | None = None
    auth: AuthContext | None = None
    client_kind: str = "wallet"
    policy_digest: str = ""
    now: int = 0

    @property
    def outcome(self) -> Outcome:
        """``step_up`` (answer RFC 9470), ``deny`` (nothing to issue, or ``openid`` refused) or ``issue``."""
        if self.step_up is not None:
            return "step_up"
        if "openid" in self.requested_scopes and "openid" not in self.granted_scopes:
            return "deny"
        if not self.granted_scopes and not self.granted_details:
            return "deny"
        return "issue"

    @property
    def scope(self) -> str:
        """The granted scope as the ``scope`` response parameter spells it."""
        return " ".join(self.granted_scopes)

    @property
    def narrower_than_requested(self) -> bool:
        """Whether the response must say what was granted (RFC 6749 section 3.3, RFC 9396 section 7)."""
        return bool(self.refused or self.narrowed) or self.granted_scopes != self.requested_scopes

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The rules that refused or narrowed something, in order, each once."""
        ids = [r.rule_id for r in self.refused] + [n.rule_id for n in self.narrowed]
        return tuple(dict.fromkeys(ids))

    def to_audit(self) -> dict[str, Any]:
        """The decision and its inputs for the audit trail: JSON-safe ints, strings, lists, booleans and
        null only (amounts stay decimal strings; no floats)."""
        auth = self.auth
        return {
            "policy": self.policy_digest,
            "outcome": self.outcome,
            "client_kind": self.client_kind,
            "now": self.now,
            "inputs": {
                "scopes": list(self.requested_scopes),
                "authorization_details": [_json_safe(d) for d in self.requested_details],
                "facts": None if self.facts is None else self.facts.to_audit(),
                "acr": None if auth is None else auth.acr,
                "amr": [] if auth is None else list(auth.amr),
                "auth_time": None if auth is None else int(auth.auth_time.timestamp()),
            },
            "granted_scopes": list(self.granted_scopes),
            "granted_details": [_json_safe(d) for d in self.granted_details],
            "refused": [{"item": r.item, "rule_id": r.rule_id, "reason": r.reason} for r in self.refused],
            "narrowed": [{"item": n.item, "rule_id": n.rule_id, "reason": n.reason} for n in self.narrowed],
            "rule_ids": list(self.rule_ids),
            "max_token_lifetime": self.max_token_lifetime,
            "step_up": None
            if self.step_up is None
            else {"acr_values": list(self.step_up.acr_values), "max_age": self.step_up.max_age},
        }


def evaluate(
    policy: Policy,
    facts: ComplianceFacts,
    scopes: Sequence[str],
    details: Sequence[dict[str, Any]],
    auth: AuthContext,
    now: datetime,
    *,
    client_kind: Literal["wallet", "service"] = "wallet",
) -> PolicyDecision:
    """Decide a request. ``details`` are validated again (``rar.parse_detail``), so an invalid one raises
    InvalidAuthorizationDetails rather than being judged."""
    requested = tuple(dict.fromkeys(scopes))
    parsed = tuple(parse_detail(d, f"authorization_details[{i}]") for i, d in enumerate(details))
    checks: list[Check] = []
    refused: list[Refusal] = []
    narrowed: list[Narrowing] = []
    step_up_checks: list[Check] = []
    granted_scopes: list[str] = []

    for name in requested:
        rule = policy.scopes.get(name)
        if rule is None:
            reason = f"scope {name} is not defined by this policy"
            checks.append(Check(name, "scope/unknown", False, reason))
            refused.append(Refusal(name, "scope/unknown", reason))
            continue
        item_checks = check_scope(policy, rule, facts, auth, now, client_kind, name)
        checks += item_checks
        result, primary = verdict(item_checks)
        if result == "granted":
            granted_scopes.append(name)
        else:
            # Refused either way; an item held back by authentication alone also asks for a step-up.
            if result == "step_up":
                step_up_checks += [c for c in item_checks if c.auth]
            assert primary is not None
            refused.append(Refusal(name, primary.rule_id, primary.text))

    granted_details: list[dict[str, Any]] = []
    lifetime_scopes = set(granted_scopes)
    for index, detail in enumerate(parsed):
        result_d = narrow_detail(policy, detail, index, facts, auth, now, client_kind)
        checks += result_d.checks
        refused += result_d.refused
        narrowed += result_d.narrowed
        step_up_checks += result_d.step_up
        if result_d.granted is not None:
            granted_details.append(result_d.granted)
            lifetime_scopes |= result_d.scopes

    caps = [policy.scopes[s].max_token_lifetime for s in sorted(lifetime_scopes)]
    caps.append(policy.max_token_lifetime)
    known_caps = [c for c in caps if c is not None]
    return PolicyDecision(
        granted_scopes=tuple(granted_scopes),
        granted_details=tuple(granted_details),
        refused=tuple(refused),
        max_token_lifetime=min(known_caps) if known_caps else None,
        step_up=_step_up(policy, step_up_checks),
        narrowed=tuple(narrowed),
        checks=tuple(checks),
        requested_scopes=requested,
        requested_details=parsed,
        facts=facts,
        auth=auth,
        client_kind=client_kind,
        policy_digest=policy.digest,
        now=int(now.timestamp()),
    )


def enforce(decision: PolicyDecision) -> PolicyDecision:
    """The decision when something may be issued; else the error to answer with (RFC 9470 step-up, or
    ``access_denied`` listing the refusals)."""
    if decision.step_up is not None:
        raise decision.step_up.error()
    if decision.outcome == "deny":
        reasons = "; ".join(f"{r.item}: {r.reason}" for r in decision.refused) or "nothing was requested"
        raise PolicyDenied(f"the policy grants none of the requested access: {reasons}"[:1000])
    return decision


def _step_up(policy: Policy, checks: Sequence[Check]) -> StepUp | None:
    """The authentication that would clear every check blocked by authentication alone."""
    if not checks:
        return None
    needed = [c.acr for c in checks if c.acr is not None]
    acr_values: tuple[str, ...] = ()
    if needed:
        strongest = max(policy.acr_rank(a) for a in needed)
        acr_values = policy.acr_levels[strongest:]
    ages = [c.max_age for c in checks if c.max_age is not None]
    return StepUp(acr_values, min(ages) if ages else None)


def _json_safe(value: Any) -> Any:
    """A deep copy in JSON types; anything else (there should be nothing else) as its string."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
