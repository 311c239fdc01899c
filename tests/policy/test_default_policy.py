"""The shipped policy/default.toml, table-driven: who gets which scope, and the exact reason for refusals."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from app.policy.engine import evaluate
from app.policy.facts import ComplianceFacts, no_source_facts
from app.policy.model import Policy
from tests.policy.helpers import MFA, NOW, WALLET, auth, facts

TRADING = ["openid", "portfolio:read", "perps:trade", "options:trade", "vault:deposit"]
ALL_WALLET = [*TRADING, "vault:withdraw", "compliance:read", "profile"]
EXPIRED_AT = int(NOW.timestamp()) - 3600  # 2026-03-01T11:00:00Z

PERPS_APPROPRIATENESS = (
    "missing required flag appropriateness_derivatives (MiFID II art. 25(3): retail clients need a passed "
    "appropriateness test for derivatives)"
)
OPTIONS_CLASS = "investor class retail is not allowed (professional, eligible_counterparty only)"


@dataclass
class Case:
    id: str
    facts: ComplianceFacts
    scopes: list[str]
    granted: list[str]
    refused: dict[str, str] = field(default_factory=dict)  # item -> exact reason
    rule_ids: dict[str, str] = field(default_factory=dict)  # item -> rule id
    acr: str = WALLET
    age: int = 10
    client_kind: str = "wallet"
    outcome: str = "issue"
    lifetime: int | None = None


CASES = [
    Case(
        "professional-de",
        facts(),
        TRADING,
        TRADING,
        lifetime=900,
    ),
    Case(
        "eligible-counterparty-fr",
        facts(investor_class="eligible_counterparty", residence="FR", flags=[]),
        TRADING,
        TRADING,
    ),
    Case(
        "retail-de-with-appropriateness",
        facts(investor_class="retail"),
        TRADING,
        ["openid", "portfolio:read", "perps:trade", "vault:deposit"],
        {"options:trade": OPTIONS_CLASS},
        {"options:trade": "scope/options:trade/investor_classes"},
    ),
    Case(
        "retail-missing-appropriateness",
        facts(investor_class="retail", flags=[]),
        ["openid", "perps:trade", "vault:deposit"],
        ["openid", "vault:deposit"],
        {"perps:trade": PERPS_APPROPRIATENESS},
        {"perps:trade": "scope/perps:trade/when[retail-appropriateness]/required_flags"},
    ),
    Case(
        "professional-needs-no-appropriateness-flag",
        facts(flags=[]),
        ["openid", "perps:trade"],
        ["openid", "perps:trade"],
    ),
    Case(
        "retail-gb-banned",
        facts(investor_class="retail", residence="GB"),
        ["openid", "perps:trade"],
        ["openid"],
        {
            "perps:trade": "investor class retail is not allowed (professional, eligible_counterparty only) "
            "(FCA PS20/10: crypto-asset derivatives may not be sold to UK retail consumers)"
        },
        {"perps:trade": "scope/perps:trade/when[uk-retail-ban]/investor_classes"},
    ),
    Case(
        "professional-gb-allowed", facts(residence="GB"), ["openid", "perps:trade"], ["openid", "perps:trade"]
    ),
    Case("residence-ch-allowed", facts(residence="CH"), TRADING, TRADING),
    Case(
        "residence-us-denied",
        facts(residence="US"),
        TRADING,
        ["openid", "portfolio:read"],
        {
            "perps:trade": "residence US is denied",
            "options:trade": "residence US is denied",
            "vault:deposit": "residence US is denied",
        },
        {"perps:trade": "scope/perps:trade/residence_deny"},
    ),
    Case(
        "residence-pr-us-territory-denied",
        facts(residence="PR"),
        ["openid", "perps:trade"],
        ["openid"],
        {"perps:trade": "residence PR is denied"},
    ),
    Case(
        "residence-kp-embargoed",
        facts(residence="KP"),
        ["openid", "perps:trade"],
        ["openid"],
        {"perps:trade": "residence KP is denied"},
    ),
    Case(
        "us-person-flag-resident-in-de",
        facts(flags=["us_person", "appropriateness_derivatives"]),
        TRADING,
        ["openid", "portfolio:read"],
        {
            "perps:trade": "forbidden flag us_person is set",
            "options:trade": "forbidden flag us_person is set",
            "vault:deposit": "forbidden flag us_person is set",
        },
        {"perps:trade": "scope/perps:trade/forbidden_flags"},
    ),
    Case(
        "us-person-may-still-withdraw",
        facts(residence="US", flags=["us_person"]),
        ["openid", "vault:withdraw"],
        ["openid", "vault:withdraw"],
        acr=MFA,
        lifetime=300,
    ),
    Case(
        "expired-record",
        facts(eligible_record=False, expired=True, valid_until=EXPIRED_AT),
        ["openid", "profile", "portfolio:read", "perps:trade"],
        ["openid", "profile"],
        {
            "portfolio:read": "the compliance record expired at 2026-03-01T11:00:00Z",
            "perps:trade": "the compliance record expired at 2026-03-01T11:00:00Z",
        },
        {"perps:trade": "scope/perps:trade/require_record"},
        lifetime=3600,
    ),
    Case(
        "revoked-record",
        facts(eligible_record=False, revoked=True),
        ["openid", "perps:trade"],
        ["openid"],
        {"perps:trade": "the compliance record is revoked"},
    ),
    Case(
        "frozen",
        facts(eligible_record=False, flags=["frozen", "appropriateness_derivatives"]),
        ["openid", "portfolio:read", "perps:trade", "vault:withdraw"],
        ["openid"],
        {
            "portfolio:read": "the account is frozen",
            "perps:trade": "the account is frozen",
            "vault:withdraw": "the account is frozen",
        },
        acr=MFA,
    ),
    Case(
        "sanctioned-gets-nothing",
        facts(sanctioned=True),
        ["openid", "profile", "perps:trade"],
        [],
        {
            "openid": "the account is sanctioned",
            "profile": "the account is sanctioned",
            "perps:trade": "the account is sanctioned",
        },
        {"openid": "scope/openid/not_sanctioned"},
        outcome="deny",
    ),
    Case(
        "kyc-too-low",
        facts(kyc_level=1),
        ["openid", "perps:trade", "portfolio:read"],
        ["openid", "portfolio:read"],
        {"perps:trade": "KYC level 1 is below the required 2"},
    ),
    Case(
        "aml-risk-too-high",
        facts(aml_risk=3),
        ["openid", "perps:trade", "vault:withdraw"],
        ["openid", "vault:withdraw"],
        {"perps:trade": "AML risk 3 is above the maximum 2"},
        acr=MFA,
    ),
    Case(
        "no-record",
        facts(
            eligible_record=False,
            residence=None,
            investor_class=None,
            kyc_level=None,
            aml_risk=None,
            flags=[],
        ),
        ["openid", "perps:trade"],
        ["openid"],
        {"perps:trade": "no compliance record for this account"},
    ),
    Case(
        "no-compliance-source",
        no_source_facts(),
        ["openid", "profile", "portfolio:read"],
        ["openid", "profile"],
        {"portfolio:read": "no compliance source for this account's chain; a compliance record is required"},
    ),
    Case(
        "unknown-scope",
        facts(),
        ["openid", "admin"],
        ["openid"],
        {"admin": "scope admin is not defined by this policy"},
        {"admin": "scope/unknown"},
    ),
    Case(
        "only-openid-left-still-signs-in",
        facts(residence="US"),
        ["openid", "perps:trade", "options:trade"],
        ["openid"],
        {"perps:trade": "residence US is denied", "options:trade": "residence US is denied"},
        lifetime=3600,
    ),
    Case(
        "nothing-granted-without-openid-is-denied",
        facts(residence="US"),
        ["perps:trade"],
        [],
        {"perps:trade": "residence US is denied"},
        outcome="deny",
    ),
    Case(
        "compliance-officer",
        facts(kyc_level=3, flags=["bit16"]),
        ["openid", "compliance:read"],
        ["openid", "compliance:read"],
        acr=MFA,
    ),
    Case(
        "compliance-read-needs-officer-flag",
        facts(kyc_level=3),
        ["openid", "compliance:read"],
        ["openid"],
        {"compliance:read": "missing required flag compliance_officer"},
        acr=MFA,
    ),
    Case(
        "step-up-for-withdraw",
        facts(),
        ["openid", "perps:trade", "vault:withdraw"],
        ["openid", "perps:trade"],
        {
            "vault:withdraw": "authentication urn:portcullis:acr:wallet is weaker than the required "
            "urn:portcullis:acr:wallet+mfa"
        },
        {"vault:withdraw": "scope/vault:withdraw/acr"},
        outcome="step_up",
    ),
    Case(
        "step-up-for-stale-mfa",
        facts(),
        ["openid", "vault:withdraw"],
        ["openid"],
        {"vault:withdraw": "authenticated 600 s ago, is more than 300 s"},
        {"vault:withdraw": "scope/vault:withdraw/max_auth_age"},
        acr=MFA,
        age=600,
        outcome="step_up",
    ),
    Case(
        "fresh-mfa-withdraws",
        facts(),
        ["openid", "vault:withdraw"],
        ["openid", "vault:withdraw"],
        acr=MFA,
        age=60,
        lifetime=300,
    ),
    Case(
        "no-step-up-when-refused-for-more-than-acr",
        facts(eligible_record=False, revoked=True),
        ["openid", "vault:withdraw"],
        ["openid"],
        {"vault:withdraw": "the compliance record is revoked"},
    ),
    Case(
        "unknown-acr-is-weakest",
        facts(),
        ["openid", "perps:trade"],
        ["openid"],
        {
            "perps:trade": "authentication urn:example:password is weaker than the required "
            "urn:portcullis:acr:wallet"
        },
        acr="urn:example:password",
        outcome="step_up",
    ),
    Case(
        "service-client",
        no_source_facts(),
        ["service:positions:read", "service:settlement:write", "perps:trade"],
        ["service:positions:read", "service:settlement:write"],
        {"perps:trade": "perps:trade is only for wallet clients, not service clients"},
        {"perps:trade": "scope/perps:trade/clients"},
        client_kind="service",
        lifetime=300,
    ),
    Case(
        "wallet-cannot-take-service-scope",
        facts(),
        ["openid", "service:compliance:read"],
        ["openid"],
        {
            "service:compliance:read": "service:compliance:read is only for service clients, "
            "not wallet clients"
        },
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_default_policy(default_policy: Policy, case: Case) -> None:
    decision = evaluate(
        default_policy,
        case.facts,
        case.scopes,
        [],
        auth(case.acr, case.age),
        NOW,
        client_kind=case.client_kind,  # type: ignore[arg-type]
    )
    assert list(decision.granted_scopes) == case.granted
    reasons = {r.item: r.reason for r in decision.refused}
    assert reasons == case.refused
    rule_ids = {r.item: r.rule_id for r in decision.refused}
    for item, rule_id in case.rule_ids.items():
        assert rule_ids[item] == rule_id
    assert decision.outcome == case.outcome
    if case.lifetime is not None:
        assert decision.max_token_lifetime == case.lifetime
    # Every requested item is either granted or refused with a reason.
    assert set(decision.granted_scopes) | set(reasons) == set(case.scopes)


def test_step_up_names_what_it_needs(default_policy: Policy) -> None:
    decision = evaluate(default_policy, facts(), ["openid", "vault:withdraw"], [], auth(WALLET), NOW)
    assert decision.step_up is not None
    assert decision.step_up.acr_values == (MFA,)
    assert decision.step_up.max_age == 300


def test_stale_mfa_step_up_keeps_the_acr(default_policy: Policy) -> None:
    decision = evaluate(default_policy, facts(), ["vault:withdraw"], [], auth(MFA, age=900), NOW)
    assert decision.step_up is not None
    assert decision.step_up.acr_values == (MFA,)
    assert decision.step_up.max_age == 300


def test_scope_response_parameter(default_policy: Policy) -> None:
    decision = evaluate(default_policy, facts(residence="US"), ["openid", "perps:trade"], [], auth(), NOW)
    assert decision.scope == "openid"
    assert decision.narrower_than_requested
    full = evaluate(default_policy, facts(), ["openid", "perps:trade"], [], auth(), NOW)
    assert full.scope == "openid perps:trade"
    assert not full.narrower_than_requested


def test_repeated_scopes_count_once(default_policy: Policy) -> None:
    decision = evaluate(default_policy, facts(), ["openid", "openid", "perps:trade"], [], auth(), NOW)
    assert decision.granted_scopes == ("openid", "perps:trade")


def test_discovery_lists(default_policy: Policy) -> None:
    assert default_policy.scopes_supported("wallet") == [
        "openid",
        "profile",
        "compliance",
        "portfolio:read",
        "perps:trade",
        "options:trade",
        "vault:deposit",
        "vault:withdraw",
        "compliance:read",
    ]
    assert default_policy.scopes_supported("service") == [
        "service:positions:read",
        "service:compliance:read",
        "service:settlement:write",
    ]
    assert default_policy.authorization_details_types_supported() == ["derivatives_trade", "withdrawal"]
