"""Properties of the decision (hypothesis), under the shipped default and the docs' worked example:

- a granted token never holds a scope or detail its policy denies (checked against an independent oracle
  written from the docs/POLICY.md tables, not from app/policy/requirements.py);
- narrowing never widens a request; the granted request is a fixed point;
- every requested scope is granted or refused with a reason; step-up only for authentication-only refusals;
- the audit record is JSON-safe and holds no floats.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.policy.engine import PolicyDecision, evaluate
from app.policy.facts import AuthContext, ComplianceFacts
from app.policy.model import (
    DEFAULT_POLICY_PATH,
    Limit,
    Policy,
    ScopeRule,
    Selector,
    load_policy,
    parse_policy,
)
from app.policy.rar import ACTIONS, ORDER_TYPES
from tests.policy.helpers import ADDRESS, MFA, NOW, OTHER, WALLET

DOCS = Path(__file__).resolve().parents[2] / "docs" / "POLICY.md"


def _docs_policy() -> Policy:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.S)
    return parse_policy(next(b for b in blocks if "eea" in b), source="docs")


POLICIES = {"default": load_policy(DEFAULT_POLICY_PATH), "docs-example": _docs_policy()}
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- strategies

PERTURBATIONS: dict[str, st.SearchStrategy[Any]] = {
    "residence": st.sampled_from(["US", "PR", "GB", "CH", "KP", "RU", "IE", None]),
    "investor_class": st.sampled_from(["retail", "professional", "eligible_counterparty", None]),
    "kyc_level": st.sampled_from([1, 2, 3, None]),
    "aml_risk": st.sampled_from([1, 2, 3, None]),
    "flags": st.frozensets(
        st.sampled_from(["us_person", "appropriateness_derivatives", "accredited", "frozen", "pep", "bit16"])
    ),
    "eligible_record": st.just(False),
    "sanctioned": st.just(True),
    "revoked": st.just(True),
    "expired": st.just(True),
    "valid_until": st.sampled_from([None, int(NOW.timestamp()) - 1]),
    "source": st.just("none"),
    "account": st.sampled_from([OTHER, None]),
}


@st.composite
def facts_st(draw: st.DrawFn, changes: int = 0) -> ComplianceFacts:
    """A compliant holder with up to ``changes`` facts changed (few changes reach every rule's boundary)."""
    facts = ComplianceFacts(
        eligible_record=True,
        residence=draw(st.sampled_from(["DE", "FR", "IE", "GB", "CH", "US", "PR", "KP", "RU"])),
        investor_class=draw(st.sampled_from(["retail", "professional", "eligible_counterparty"])),
        kyc_level=draw(st.sampled_from([2, 3])),
        aml_risk=draw(st.sampled_from([1, 2])),
        flags=draw(st.sampled_from([frozenset({"appropriateness_derivatives"}), frozenset({"bit16"})])),
        valid_until=int(NOW.timestamp()) + 86_400,
        sanctioned=False,
        revoked=False,
        expired=False,
        account=draw(st.sampled_from([ADDRESS, ADDRESS.lower()])),
        source="chain",
    )
    for name in draw(
        st.lists(st.sampled_from(sorted(PERTURBATIONS)), min_size=changes, max_size=changes, unique=True)
    ):
        facts = replace(facts, **{name: draw(PERTURBATIONS[name])})
    return facts


auth_st = st.builds(
    AuthContext,
    acr=st.sampled_from([MFA, MFA, WALLET, "urn:example:other"]),
    amr=st.just(("siwe",)),
    auth_time=st.one_of(st.integers(0, 300), st.integers(0, 2_000)).map(lambda s: NOW - timedelta(seconds=s)),
)
amounts = st.one_of(
    st.integers(1, 10**9).map(str),
    st.tuples(st.integers(0, 10**7), st.integers(1, 99)).map(lambda t: f"{t[0]}.{t[1]:02d}"),
)
instruments = ["ETH-PERP", "BTC-PERP", "ETH-27JUN26-3000-C", "BTC-27JUN26-90000-P", "SOL-27JUN26"]
currencies = st.sampled_from(["USD", "USDC", "EUR", "USDC"])
chains = ["eip155:1", "eip155:42161", "eip155:56"]
accounts = [f"{c}:{a}" for c in chains for a in (ADDRESS, OTHER)]


def _subset(values: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(values), min_size=1, max_size=len(values), unique=True)


@st.composite
def trade_st(draw: st.DrawFn) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "type": "derivatives_trade",
        "actions": draw(_subset(list(ACTIONS))),
        "instruments": draw(
            st.tuples(
                st.sampled_from(instruments[:2]), st.lists(st.sampled_from(instruments), max_size=4)
            ).map(lambda t: list(dict.fromkeys([t[0], *t[1]])))
        ),
    }
    if draw(st.booleans()):
        detail["max_notional"] = {
            "amount": draw(amounts),
            "currency": draw(currencies),
        }
    if draw(st.booleans()):
        detail["max_leverage"] = draw(st.integers(1, 1000))
    if draw(st.booleans()):
        detail["order_types"] = draw(_subset(list(ORDER_TYPES)))
    if draw(st.booleans()):
        detail["subaccount"] = draw(st.sampled_from(accounts))
    return detail


withdrawal_st = st.fixed_dictionaries(
    {
        "type": st.just("withdrawal"),
        "asset": st.sampled_from(["USDC", "USDC", "ETH", "WBTC", "DOGE"]),
        "max_amount": amounts,
        "destinations": st.one_of(
            st.just([f"eip155:1:{ADDRESS}"]),
            st.lists(st.sampled_from(accounts), min_size=1, max_size=5, unique=True),
        ),
    }
)


def request_st(policy: Policy) -> st.SearchStrategy[tuple[list[str], list[dict[str, Any]]]]:
    scopes = st.lists(st.sampled_from([*policy.scopes, "admin"]), max_size=6)
    details = st.lists(st.one_of(trade_st(), withdrawal_st), max_size=3)
    return st.tuples(scopes, details)


# ---------------------------------------------------------------- the oracle (docs/POLICY.md, "Requirements")


def _matches(sel: Selector, f: ComplianceFacts) -> bool:
    return (
        (sel.classes is None or f.investor_class in sel.classes)
        and (sel.residences is None or f.residence in sel.residences)
        and all(flag.fact in f.flags for flag in sel.flags)
    )


def oracle(
    policy: Policy, rule: ScopeRule, f: ComplianceFacts, a: AuthContext, kind: str
) -> tuple[bool, bool]:
    """(denied for a reason a step-up cannot fix, denied by authentication strength)."""
    hard = kind not in rule.clients
    weak = False
    active = f.eligible_record and not f.revoked and not f.expired and "frozen" not in f.flags
    levels = policy.acr_levels
    rank = levels.index(a.acr) if a.acr in levels else -1
    age = (NOW - a.auth_time).total_seconds()
    reqs = [rule.requirements] + [c.requirements for c in rule.when if _matches(c.selector, f)]
    for r in reqs:
        hard |= r.not_sanctioned and f.sanctioned
        hard |= r.require_record and not active
        hard |= r.residence_allow is not None and f.residence not in r.residence_allow
        hard |= bool(r.residence_deny) and (f.residence is None or f.residence in r.residence_deny)
        hard |= r.investor_classes is not None and f.investor_class not in r.investor_classes
        hard |= r.min_kyc_level is not None and (f.kyc_level is None or f.kyc_level < r.min_kyc_level)
        hard |= any(flag.fact not in f.flags for flag in r.required_flags)
        hard |= any(flag.fact in f.flags for flag in r.forbidden_flags)
        hard |= r.max_aml_risk is not None and (f.aml_risk is None or f.aml_risk > r.max_aml_risk)
        weak |= r.acr is not None and rank < levels.index(r.acr)
        weak |= r.max_auth_age is not None and age > r.max_auth_age
    return hard, weak


def _caps(limits: tuple[Limit, ...], f: ComplianceFacts) -> list[Limit]:
    return [lim for lim in limits if _matches(lim.selector, f)]


def assert_detail_allowed(
    policy: Policy, d: dict[str, Any], f: ComplianceFacts, a: AuthContext, kind: str
) -> None:
    if d["type"] == "derivatives_trade":
        rules = policy.derivatives_trade
        assert rules is not None
        for instrument in d["instruments"]:
            family = rules.family(instrument)
            assert family is not None
            assert oracle(policy, policy.scopes[family.scope], f, a, kind) == (False, False)
        assert set(d["actions"]) <= set(rules.actions)
        assert set(d["order_types"]) <= set(rules.order_types)
        limits = _caps(rules.limits, f)
        assert limits
        leverage_caps = [lim.max_leverage for lim in limits if lim.max_leverage is not None]
        if leverage_caps:
            assert d["max_leverage"] <= min(leverage_caps)
        notional_caps = [Decimal(lim.max_notional) for lim in limits if lim.max_notional is not None]
        if notional_caps:
            assert Decimal(d["max_notional"]["amount"]) <= min(notional_caps)
        if "max_notional" in d:
            assert d["max_notional"]["currency"] in rules.notional_currencies
        if "subaccount" in d and rules.subaccount_chains is not None:
            assert d["subaccount"].rsplit(":", 1)[0] in rules.subaccount_chains
    else:
        w = policy.withdrawal
        assert w is not None
        assert oracle(policy, policy.scopes[w.scope], f, a, kind) == (False, False)
        assert d["asset"] in w.assets
        limits = _caps(w.limits, f)
        assert limits
        own_only = any(lim.own_account_only for lim in limits)
        assert 1 <= len(d["destinations"]) <= w.max_destinations
        for dest in d["destinations"]:
            chain, address = dest.rsplit(":", 1)
            assert chain in w.destination_chains
            if own_only:
                assert f.account is not None and address.lower() == f.account.lower()
        amount_caps = [Decimal(lim.max_amount[d["asset"]]) for lim in limits if d["asset"] in lim.max_amount]
        if amount_caps:
            assert Decimal(d["max_amount"]) <= min(amount_caps)


def _decide(policy: Policy, data: st.DataObject) -> tuple[PolicyDecision, ComplianceFacts, AuthContext, str]:
    """Mostly wallet holders who are compliant or one fact away from it, so grants, narrowing and each rule's
    boundary are exercised as much as refusals; a quarter of the draws change up to three facts at once."""
    changes = data.draw(st.sampled_from([0, 1, 1, 3]), label="changes")
    f = data.draw(facts_st(changes), label="facts")
    if changes < 3:
        acr = data.draw(st.sampled_from([MFA, MFA, WALLET]))
        age = data.draw(st.one_of(st.integers(0, 300), st.integers(0, 700)))
        a = AuthContext(acr, ("siwe",), NOW - timedelta(seconds=age))
        kind = "wallet"
    else:
        a = data.draw(auth_st, label="auth")
        kind = data.draw(st.sampled_from(["wallet", "wallet", "service"]), label="client_kind")
    scopes, details = data.draw(request_st(policy), label="request")
    return evaluate(policy, f, scopes, details, a, NOW, client_kind=kind), f, a, kind  # type: ignore[arg-type]


# ---------------------------------------------------------------- properties

pytestmark = pytest.mark.parametrize("policy", list(POLICIES.values()), ids=list(POLICIES))


@PROPERTY
@given(data=st.data())
def test_granted_never_holds_what_the_policy_denies(policy: Policy, data: st.DataObject) -> None:
    decision, f, a, kind = _decide(policy, data)
    refused = {r.item for r in decision.refused}
    for scope in decision.requested_scopes:
        rule = policy.scopes.get(scope)
        if rule is None:
            assert scope in refused and scope not in decision.granted_scopes
            continue
        hard, weak = oracle(policy, rule, f, a, kind)
        assert (scope in decision.granted_scopes) is (not hard and not weak)
        assert (scope in refused) is (hard or weak)
    for detail in decision.granted_details:
        assert_detail_allowed(policy, detail, f, a, kind)
    if decision.step_up is not None:
        blocked_by_auth_only = [
            s
            for s in decision.requested_scopes
            if s in policy.scopes and oracle(policy, policy.scopes[s], f, a, kind) == (False, True)
        ]
        assert blocked_by_auth_only or decision.requested_details
    elif not decision.requested_details:
        assert all(
            oracle(policy, policy.scopes[s], f, a, kind) != (False, True)
            for s in decision.requested_scopes
            if s in policy.scopes
        )


@PROPERTY
@given(data=st.data())
def test_narrowing_never_widens(policy: Policy, data: st.DataObject) -> None:
    decision, *_ = _decide(policy, data)
    assert set(decision.granted_scopes) <= set(decision.requested_scopes)
    refused = {r.item for r in decision.refused}
    kept = [
        d for i, d in enumerate(decision.requested_details) if f"authorization_details[{i}]" not in refused
    ]
    assert len(kept) == len(decision.granted_details)
    for asked, got in zip(kept, decision.granted_details, strict=True):
        assert got["type"] == asked["type"]
        if got["type"] == "derivatives_trade":
            assert set(got["actions"]) <= set(asked["actions"])
            assert set(got["instruments"]) <= set(asked["instruments"])
            if "order_types" in asked:
                assert set(got["order_types"]) <= set(asked["order_types"])
            if "max_leverage" in asked:
                assert got["max_leverage"] <= asked["max_leverage"]
            if "max_notional" in asked:
                assert got["max_notional"]["currency"] == asked["max_notional"]["currency"]
                assert Decimal(got["max_notional"]["amount"]) <= Decimal(asked["max_notional"]["amount"])
            assert got.get("subaccount") == asked.get("subaccount")
        else:
            assert got["asset"] == asked["asset"]
            assert set(got["destinations"]) <= set(asked["destinations"])
            assert Decimal(got["max_amount"]) <= Decimal(asked["max_amount"])


@PROPERTY
@given(data=st.data())
def test_the_grant_is_a_fixed_point(policy: Policy, data: st.DataObject) -> None:
    decision, f, a, kind = _decide(policy, data)
    again = evaluate(
        policy,
        f,
        decision.granted_scopes,
        decision.granted_details,
        a,
        NOW,
        client_kind=kind,  # type: ignore[arg-type]
    )
    assert again.granted_scopes == decision.granted_scopes
    assert again.granted_details == decision.granted_details
    assert again.refused == () and again.narrowed == () and again.step_up is None


@PROPERTY
@given(data=st.data())
def test_asking_for_less_never_gets_more(policy: Policy, data: st.DataObject) -> None:
    decision, f, a, kind = _decide(policy, data)
    fewer = data.draw(
        st.lists(st.sampled_from(decision.requested_scopes), unique=True)
        if decision.requested_scopes
        else st.just([])
    )
    smaller = evaluate(policy, f, fewer, [], a, NOW, client_kind=kind)  # type: ignore[arg-type]
    assert set(smaller.granted_scopes) == set(decision.granted_scopes) & set(fewer)


@PROPERTY
@given(data=st.data())
def test_audit_record_is_json_safe(policy: Policy, data: st.DataObject) -> None:
    decision, *_ = _decide(policy, data)
    record = decision.to_audit()

    def walk(value: Any) -> None:
        assert not isinstance(value, float)
        assert value is None or isinstance(value, bool | int | str | list | dict)
        if isinstance(value, dict):
            assert all(isinstance(k, str) for k in value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(record)
    assert json.loads(json.dumps(record)) == record
    assert record["rule_ids"] == list(
        dict.fromkeys([r["rule_id"] for r in record["refused"]] + [n["rule_id"] for n in record["narrowed"]])
    )
