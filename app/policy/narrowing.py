"""RFC 9396 authorization details narrowed by policy: what of a ``derivatives_trade`` or ``withdrawal``
request the holder may have (docs/POLICY.md, "Authorization details").

Narrowing only ever removes or lowers: instruments, actions, order types and destinations are filtered,
``max_leverage``, ``max_notional`` and ``max_amount`` are capped (and filled in with the cap when the request
set none). A detail with nothing left is refused. Every removal and cap names its rule and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.policy.caip import parse_account_id, same_address
from app.policy.facts import AuthContext, ComplianceFacts
from app.policy.model import DerivativesRules, Limit, Policy, WithdrawalRules
from app.policy.rar import TYPES
from app.policy.requirements import Check, Narrowing, Refusal, check_scope, verdict

Detail = dict[str, Any]


@dataclass
class DetailOutcome:
    """What became of one requested detail: the granted (narrowed) detail or None, and the why of it."""

    item: str
    granted: Detail | None = None
    checks: list[Check] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    narrowed: list[Narrowing] = field(default_factory=list)
    step_up: list[Check] = field(default_factory=list)  # auth checks of parts blocked by authentication alone
    scopes: set[str] = field(default_factory=set)  # the governing scopes of what was granted

    def refuse(self, rule_id: str, reason: str, *, auth: bool = False) -> DetailOutcome:
        """Refuse the whole detail; ``auth`` when only a stronger sign-in stands in the way."""
        self.refused.append(Refusal(self.item, rule_id, reason))
        self.checks.append(Check(self.item, rule_id, False, reason, auth=auth))
        self.narrowed.clear()  # nothing of the detail is granted, so nothing was narrowed
        self.granted = None
        return self

    def drop(self, part: str, rule_id: str, reason: str) -> None:
        self.refused.append(Refusal(f"{self.item}.{part}", rule_id, reason))

    def narrow(self, part: str, rule_id: str, reason: str) -> None:
        self.narrowed.append(Narrowing(f"{self.item}.{part}", rule_id, reason))
        self.checks.append(Check(f"{self.item}.{part}", rule_id, True, reason))


def narrow_detail(
    policy: Policy,
    detail: Detail,
    index: int,
    facts: ComplianceFacts,
    auth: AuthContext,
    now: datetime,
    client_kind: str,
) -> DetailOutcome:
    """The outcome of ``detail`` (already validated by ``rar.parse_detail``) for this holder."""
    out = DetailOutcome(f"authorization_details[{index}]")
    kind = detail["type"]
    rules = policy.derivatives_trade if kind == "derivatives_trade" else policy.withdrawal
    if rules is None:
        return out.refuse(f"detail/{kind}/enabled", f"{kind} is not enabled by this policy")
    out.checks.append(Check(out.item, f"detail/{kind}/enabled", True, f"{kind} is enabled by this policy"))
    if isinstance(rules, DerivativesRules):
        return _trade(policy, rules, detail, facts, auth, now, client_kind, out)
    return _withdrawal(policy, rules, detail, facts, auth, now, client_kind, out)


def _limit_reason(limit: Limit) -> str:
    return limit.reason or f"limit {limit.id} ({limit.selector.describe()})"


def _trade(
    policy: Policy,
    rules: DerivativesRules,
    detail: Detail,
    facts: ComplianceFacts,
    auth: AuthContext,
    now: datetime,
    client_kind: str,
    out: DetailOutcome,
) -> DetailOutcome:
    base = "detail/derivatives_trade"
    granted: Detail = dict(detail)
    # Instruments: each is judged by its family's scope; the first failing rule is the reason.
    kept: list[str] = []
    first_refusal: Refusal | None = None
    hard_drop = False  # an instrument was dropped for more than its authentication strength
    for instrument in detail["instruments"]:
        part = f"instruments[{instrument}]"
        family = rules.family(instrument)
        if family is None:
            reason = f"instrument {instrument} is not listed by this policy"
            out.checks.append(Check(f"{out.item}.{part}", f"{base}/instruments", False, reason))
            out.drop(part, f"{base}/instruments", reason)
            first_refusal = first_refusal or out.refused[-1]
            hard_drop = True
            continue
        checks = check_scope(
            policy, policy.scopes[family.scope], facts, auth, now, client_kind, f"{out.item}.{part}"
        )
        out.checks += checks
        result, primary = verdict(checks)
        if result == "granted":
            kept.append(instrument)
            out.scopes.add(family.scope)
        else:
            if result == "step_up":
                out.step_up += [c for c in checks if c.auth]
            else:
                hard_drop = True
            assert primary is not None
            out.drop(part, primary.rule_id, f"{instrument} ({family.scope}): {primary.text}")
            first_refusal = first_refusal or out.refused[-1]
    if not kept:
        assert first_refusal is not None
        return out.refuse(
            first_refusal.rule_id,
            f"no requested instrument is allowed: {first_refusal.reason}",
            auth=not hard_drop,
        )
    granted["instruments"] = kept

    actions = [a for a in detail["actions"] if a in rules.actions]
    for action in detail["actions"]:
        if action not in rules.actions:
            out.drop(
                f"actions[{action}]", f"{base}/actions", f"action {action} is not allowed by this policy"
            )
    if not actions:
        return out.refuse(f"{base}/actions", "no requested action is allowed by this policy")
    granted["actions"] = actions

    if "order_types" in detail:
        types = [t for t in detail["order_types"] if t in rules.order_types]
        for t in detail["order_types"]:
            if t not in rules.order_types:
                out.drop(
                    f"order_types[{t}]",
                    f"{base}/order_types",
                    f"order type {t} is not allowed by this policy",
                )
        if not types:
            return out.refuse(f"{base}/order_types", "no requested order type is allowed by this policy")
        granted["order_types"] = types
    else:
        granted["order_types"] = list(rules.order_types)
        out.narrow(
            "order_types", f"{base}/order_types", "order_types set to the policy's list (none requested)"
        )

    sub = detail.get("subaccount")
    if sub is not None and rules.subaccount_chains is not None:
        account = parse_account_id(sub)
        if account is None or account.chain not in rules.subaccount_chains:
            chain = account.chain if account else sub
            return out.refuse(f"{base}/subaccount_chains", f"sub-account chain {chain} is not allowed")

    limits = [lim for lim in rules.limits if lim.selector.matches(facts)]
    if not limits:
        return out.refuse(f"{base}/limits", "no trading limit of this policy applies to this holder")
    lev_limits = [lim for lim in limits if lim.max_leverage is not None]
    if lev_limits:
        binding = min(lev_limits, key=lambda lim: lim.max_leverage or 0)
        cap = binding.max_leverage
        assert cap is not None
        asked = detail.get("max_leverage")
        rule = f"{base}/limit[{binding.id}]/max_leverage"
        if asked is None:
            granted["max_leverage"] = cap
            out.narrow(
                "max_leverage", rule, f"max_leverage set to {cap} (none requested): {_limit_reason(binding)}"
            )
        elif asked > cap:
            granted["max_leverage"] = cap
            out.narrow(
                "max_leverage", rule, f"max_leverage {asked} narrowed to {cap}: {_limit_reason(binding)}"
            )

    notional = detail.get("max_notional")
    if notional is not None and notional["currency"] not in rules.notional_currencies:
        return out.refuse(
            f"{base}/notional_currencies",
            f"max_notional currency {notional['currency']} is not one of "
            + ", ".join(rules.notional_currencies),
        )
    cap_limits = [lim for lim in limits if lim.max_notional is not None]
    if cap_limits:
        binding = min(cap_limits, key=lambda lim: Decimal(lim.max_notional or "0"))
        cap_text = binding.max_notional
        assert cap_text is not None
        rule = f"{base}/limit[{binding.id}]/max_notional"
        if notional is None:
            currency = rules.notional_currencies[0]
            granted["max_notional"] = {"amount": cap_text, "currency": currency}
            out.narrow(
                "max_notional",
                rule,
                f"max_notional set to {cap_text} {currency} (none requested): {_limit_reason(binding)}",
            )
        elif Decimal(notional["amount"]) > Decimal(cap_text):
            granted["max_notional"] = {"amount": cap_text, "currency": notional["currency"]}
            out.narrow(
                "max_notional",
                rule,
                f"max_notional {notional['amount']} narrowed to {cap_text} {notional['currency']}: "
                f"{_limit_reason(binding)}",
            )
        else:
            granted["max_notional"] = dict(notional)
    out.granted = _ordered(granted)
    return out


def _withdrawal(
    policy: Policy,
    rules: WithdrawalRules,
    detail: Detail,
    facts: ComplianceFacts,
    auth: AuthContext,
    now: datetime,
    client_kind: str,
    out: DetailOutcome,
) -> DetailOutcome:
    base = "detail/withdrawal"
    checks = check_scope(policy, policy.scopes[rules.scope], facts, auth, now, client_kind, out.item)
    out.checks += checks
    result, primary = verdict(checks)
    if result != "granted":
        assert primary is not None
        if result == "step_up":
            out.step_up += [c for c in checks if c.auth]
        reason = f"withdrawal ({rules.scope}): {primary.text}"
        return out.refuse(primary.rule_id, reason, auth=result == "step_up")
    asset = detail["asset"]
    if asset not in rules.assets:
        return out.refuse(f"{base}/assets", f"asset {asset} is not one of {', '.join(rules.assets)}")
    if len(detail["destinations"]) > rules.max_destinations:
        return out.refuse(
            f"{base}/max_destinations", f"more than {rules.max_destinations} destinations requested"
        )
    limits = [lim for lim in rules.limits if lim.selector.matches(facts)]
    if not limits:
        return out.refuse(f"{base}/limits", "no withdrawal limit of this policy applies to this holder")
    own_only = next((lim for lim in limits if lim.own_account_only), None)
    kept: list[str] = []
    for dest in detail["destinations"]:
        account = parse_account_id(dest)
        assert account is not None
        part = f"destinations[{dest}]"
        if account.chain not in rules.destination_chains:
            out.drop(part, f"{base}/destination_chains", f"destination chain {account.chain} is not allowed")
        elif own_only is not None and (facts.account is None or not same_address(account, facts.account)):
            out.drop(
                part,
                f"{base}/limit[{own_only.id}]/own_account_only",
                f"only the holder's own wallet is allowed as destination: {_limit_reason(own_only)}",
            )
        else:
            kept.append(dest)
    if not kept:
        first = out.refused[-1]
        return out.refuse(first.rule_id, f"no requested destination is allowed: {first.reason}")
    granted: Detail = dict(detail)
    granted["destinations"] = kept
    caps = [lim for lim in limits if asset in lim.max_amount]
    if caps:
        binding = min(caps, key=lambda lim: Decimal(lim.max_amount[asset]))
        cap_text = binding.max_amount[asset]
        if Decimal(detail["max_amount"]) > Decimal(cap_text):
            granted["max_amount"] = cap_text
            out.narrow(
                "max_amount",
                f"{base}/limit[{binding.id}]/max_amount",
                f"max_amount {detail['max_amount']} narrowed to {cap_text} {asset}: {_limit_reason(binding)}",
            )
    out.scopes.add(rules.scope)
    out.granted = _ordered(granted)
    return out


def _ordered(detail: Detail) -> Detail:
    """The members in the schema's order (``type`` first), as ``rar.parse_detail`` returns them."""
    order = ["type", *TYPES[detail["type"]]]
    return {k: detail[k] for k in order if k in detail}
