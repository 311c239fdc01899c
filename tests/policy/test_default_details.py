"""RFC 9396 details under policy/default.toml, table-driven: leverage and notional narrowing by investor
class, instruments by residence and class, withdrawal destinations and amounts, step-up for withdrawals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from app.policy.engine import evaluate
from app.policy.facts import ComplianceFacts
from app.policy.model import Policy
from tests.policy.helpers import ADDRESS, MFA, NOW, OTHER, WALLET, auth, facts, trade, withdrawal

ALL_ORDER_TYPES = ["market", "limit", "stop_market", "stop_limit", "take_profit"]
RETAIL_CAP = (
    "retail clients: leverage at most 2:1 on crypto-asset derivatives (as ESMA's retail CFD rule), "
    "venue notional cap"
)
RETAIL_WITHDRAWAL = "retail withdrawals go to the client's own wallet, up to a daily-size cap"
MINE = f"eip155:1:{ADDRESS}"
MINE_ON_ARBITRUM = f"eip155:42161:{ADDRESS.lower()}"
THEIRS = f"eip155:1:{OTHER}"


@dataclass
class Case:
    id: str
    facts: ComplianceFacts
    detail: dict[str, Any]
    granted: dict[str, Any] | None  # the narrowed detail, or None when refused
    refused: dict[str, str] = field(default_factory=dict)  # item -> exact reason
    narrowed: dict[str, str] = field(default_factory=dict)  # item -> exact reason
    acr: str = WALLET
    outcome: str = "issue"


def _trade_granted(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "derivatives_trade",
        "actions": ["place_order"],
        "instruments": ["ETH-PERP"],
    }
    out.update(fields)
    return out


D0 = "authorization_details[0]"

CASES = [
    Case(
        "retail-leverage-and-notional-capped",
        facts(investor_class="retail"),
        trade(max_leverage=10, max_notional={"amount": "50000", "currency": "USDC"}),
        _trade_granted(
            max_notional={"amount": "10000", "currency": "USDC"}, max_leverage=2, order_types=ALL_ORDER_TYPES
        ),
        narrowed={
            f"{D0}.max_leverage": f"max_leverage 10 narrowed to 2: {RETAIL_CAP}",
            f"{D0}.max_notional": f"max_notional 50000 narrowed to 10000 USDC: {RETAIL_CAP}",
            f"{D0}.order_types": "order_types set to the policy's list (none requested)",
        },
    ),
    Case(
        "retail-no-limits-asked-gets-the-caps",
        facts(investor_class="retail"),
        trade(order_types=["limit"]),
        _trade_granted(
            max_notional={"amount": "10000", "currency": "USD"}, max_leverage=2, order_types=["limit"]
        ),
        narrowed={
            f"{D0}.max_leverage": f"max_leverage set to 2 (none requested): {RETAIL_CAP}",
            f"{D0}.max_notional": f"max_notional set to 10000 USD (none requested): {RETAIL_CAP}",
        },
    ),
    Case(
        "retail-within-caps-unchanged",
        facts(investor_class="retail"),
        trade(max_leverage=2, max_notional={"amount": "500.25", "currency": "USD"}, order_types=["limit"]),
        _trade_granted(
            max_notional={"amount": "500.25", "currency": "USD"}, max_leverage=2, order_types=["limit"]
        ),
    ),
    Case(
        "professional-leverage-within-cap",
        facts(),
        trade(max_leverage=10, order_types=["limit"], max_notional={"amount": "250000", "currency": "USD"}),
        _trade_granted(
            max_notional={"amount": "250000", "currency": "USD"}, max_leverage=10, order_types=["limit"]
        ),
    ),
    Case(
        "professional-leverage-capped-at-20",
        facts(),
        trade(max_leverage=50, order_types=["limit"], max_notional={"amount": "2000000", "currency": "USD"}),
        _trade_granted(
            max_notional={"amount": "1000000", "currency": "USD"}, max_leverage=20, order_types=["limit"]
        ),
        narrowed={
            f"{D0}.max_leverage": "max_leverage 50 narrowed to 20: professional client cap",
            f"{D0}.max_notional": "max_notional 2000000 narrowed to 1000000 USD: professional client cap",
        },
    ),
    Case(
        "eligible-counterparty-no-notional-cap",
        facts(investor_class="eligible_counterparty"),
        trade(
            max_leverage=100, order_types=["market"], max_notional={"amount": "90000000", "currency": "USDT"}
        ),
        _trade_granted(
            max_notional={"amount": "90000000", "currency": "USDT"}, max_leverage=50, order_types=["market"]
        ),
        narrowed={f"{D0}.max_leverage": "max_leverage 100 narrowed to 50: eligible counterparty cap"},
    ),
    Case(
        "retail-options-dropped-perps-kept",
        facts(investor_class="retail"),
        trade(instruments=["ETH-PERP", "BTC-27JUN26-90000-C"], max_leverage=2, order_types=["limit"]),
        _trade_granted(
            max_notional={"amount": "10000", "currency": "USD"}, max_leverage=2, order_types=["limit"]
        ),
        refused={
            f"{D0}.instruments[BTC-27JUN26-90000-C]": "BTC-27JUN26-90000-C (options:trade): investor class "
            "retail is not allowed (professional, eligible_counterparty only)"
        },
        narrowed={f"{D0}.max_notional": f"max_notional set to 10000 USD (none requested): {RETAIL_CAP}"},
    ),
    Case(
        "unlisted-instrument-dropped",
        facts(),
        trade(instruments=["ETH-PERP", "ETH-27JUN26"], max_leverage=5, order_types=["limit"]),
        _trade_granted(
            max_notional={"amount": "1000000", "currency": "USD"}, max_leverage=5, order_types=["limit"]
        ),
        refused={f"{D0}.instruments[ETH-27JUN26]": "instrument ETH-27JUN26 is not listed by this policy"},
        narrowed={
            f"{D0}.max_notional": "max_notional set to 1000000 USD (none requested): professional client cap"
        },
    ),
    Case(
        "us-resident-gets-no-derivatives",
        facts(residence="US"),
        trade(),
        None,
        refused={
            f"{D0}.instruments[ETH-PERP]": "ETH-PERP (perps:trade): residence US is denied",
            D0: "no requested instrument is allowed: ETH-PERP (perps:trade): residence US is denied",
        },
    ),
    Case(
        "us-person-flag-gets-no-derivatives",
        facts(flags=["us_person"]),
        trade(),
        None,
        refused={
            f"{D0}.instruments[ETH-PERP]": "ETH-PERP (perps:trade): forbidden flag us_person is set",
            D0: "no requested instrument is allowed: ETH-PERP (perps:trade): forbidden flag us_person is set",
        },
    ),
    Case(
        "notional-in-unlisted-currency",
        facts(),
        trade(max_notional={"amount": "100", "currency": "EUR"}),
        None,
        refused={D0: "max_notional currency EUR is not one of USD, USDC, USDT"},
    ),
    Case(
        "subaccount-on-unlisted-chain",
        facts(),
        trade(subaccount=f"eip155:56:{ADDRESS}"),
        None,
        refused={D0: "sub-account chain eip155:56 is not allowed"},
    ),
    Case(
        "withdrawal-retail-own-wallet-only",
        facts(investor_class="retail"),
        withdrawal(
            max_amount="100000",
            destinations=[MINE, THEIRS, f"eip155:56:{ADDRESS}"],
        ),
        {"type": "withdrawal", "asset": "USDC", "max_amount": "50000", "destinations": [MINE]},
        refused={
            f"{D0}.destinations[{THEIRS}]": f"only the holder's own wallet is allowed as destination: "
            f"{RETAIL_WITHDRAWAL}",
            f"{D0}.destinations[eip155:56:{ADDRESS}]": "destination chain eip155:56 is not allowed",
        },
        narrowed={f"{D0}.max_amount": f"max_amount 100000 narrowed to 50000 USDC: {RETAIL_WITHDRAWAL}"},
        acr=MFA,
    ),
    Case(
        "withdrawal-retail-own-wallet-on-another-chain",
        facts(investor_class="retail"),
        withdrawal(destinations=[MINE_ON_ARBITRUM]),
        {"type": "withdrawal", "asset": "USDC", "max_amount": "1000", "destinations": [MINE_ON_ARBITRUM]},
        acr=MFA,
    ),
    Case(
        "withdrawal-retail-to-someone-else-refused",
        facts(investor_class="retail"),
        withdrawal(destinations=[THEIRS]),
        None,
        refused={
            f"{D0}.destinations[{THEIRS}]": f"only the holder's own wallet is allowed as destination: "
            f"{RETAIL_WITHDRAWAL}",
            D0: "no requested destination is allowed: "
            f"only the holder's own wallet is allowed as destination: {RETAIL_WITHDRAWAL}",
        },
        acr=MFA,
    ),
    Case(
        "withdrawal-professional-any-listed-chain",
        facts(),
        withdrawal(asset="ETH", max_amount="10.5", destinations=[THEIRS, MINE_ON_ARBITRUM]),
        {
            "type": "withdrawal",
            "asset": "ETH",
            "max_amount": "10.5",
            "destinations": [THEIRS, MINE_ON_ARBITRUM],
        },
        acr=MFA,
    ),
    Case(
        "withdrawal-unlisted-asset",
        facts(),
        withdrawal(asset="DOGE"),
        None,
        refused={D0: "asset DOGE is not one of USDC, USDT, ETH, WBTC"},
        acr=MFA,
    ),
    Case(
        "withdrawal-too-many-destinations",
        facts(),
        withdrawal(destinations=[f"eip155:1:0x{i:040x}" for i in range(1, 5)]),
        None,
        refused={D0: "more than 3 destinations requested"},
        acr=MFA,
    ),
    Case(
        "withdrawal-needs-step-up",
        facts(),
        withdrawal(),
        None,
        refused={
            D0: "withdrawal (vault:withdraw): authentication urn:portcullis:acr:wallet is weaker than the "
            "required urn:portcullis:acr:wallet+mfa"
        },
        outcome="step_up",
    ),
    Case(
        "withdrawal-frozen-no-step-up",
        facts(eligible_record=False, flags=["frozen"]),
        withdrawal(),
        None,
        refused={D0: "withdrawal (vault:withdraw): the account is frozen"},
        outcome="issue",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_default_details(default_policy: Policy, case: Case) -> None:
    decision = evaluate(default_policy, case.facts, ["openid"], [case.detail], auth(case.acr), NOW)
    if case.granted is None:
        assert decision.granted_details == ()
    else:
        assert decision.granted_details == (case.granted,)
        assert list(decision.granted_details[0]) == list(case.granted)  # schema order
    assert {r.item: r.reason for r in decision.refused} == case.refused
    assert {n.item: n.reason for n in decision.narrowed} == case.narrowed
    assert decision.outcome == case.outcome


def test_step_up_for_options_only_part_of_a_detail(default_policy: Policy) -> None:
    """An instrument held back by authentication alone asks for a step-up, even though others are granted."""
    decision = evaluate(
        default_policy,
        facts(),
        ["openid"],
        [trade(instruments=["ETH-PERP"])],
        auth("urn:example:weak"),
        NOW,
    )
    assert decision.outcome == "step_up"
    assert decision.step_up is not None and decision.step_up.acr_values == (WALLET, MFA)


def test_detail_lifetime_follows_its_governing_scope(default_policy: Policy) -> None:
    trade_only = evaluate(default_policy, facts(), ["openid"], [trade()], auth(), NOW)
    assert trade_only.max_token_lifetime == 900
    withdraw = evaluate(default_policy, facts(), ["openid"], [withdrawal()], auth(MFA), NOW)
    assert withdraw.max_token_lifetime == 300


def test_details_alone_are_enough_to_issue(default_policy: Policy) -> None:
    decision = evaluate(default_policy, facts(), [], [trade()], auth(), NOW)
    assert decision.outcome == "issue"
    refused = evaluate(default_policy, facts(residence="US"), [], [trade()], auth(), NOW)
    assert refused.outcome == "deny"
