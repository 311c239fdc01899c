"""What the consent screen says about RFC 9396 details (app/oauth/consent.py), decided by the real default
policy (policy/default.toml): actions and order types as words, and for each narrowed or dropped part what
was asked, what is granted and the policy's reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.oauth import consent
from app.policy.engine import evaluate
from app.policy.model import DEFAULT_POLICY_PATH, load_policy
from tests.policy.helpers import NOW, auth, facts, trade

POLICY = load_policy(DEFAULT_POLICY_PATH)


def lines_for(*details: dict[str, Any], investor_class: str = "professional") -> list[dict[str, Any]]:
    decision = evaluate(POLICY, facts(investor_class=investor_class), ["perps:trade"], details, auth(), NOW)
    return consent.detail_lines(decision.granted_details, decision.to_audit())


def test_actions_and_order_types_are_words() -> None:
    (line,) = lines_for(trade(actions=["place_order", "close_position"], order_types=["stop_limit"]))
    summary = str(line["summary"])
    assert summary.startswith("Place orders and close positions on ETH-PERP, with stop-limit orders"), summary
    assert "place_order" not in summary and "stop_limit" not in summary


def test_a_narrowed_leverage_says_what_was_asked_what_is_granted_and_why() -> None:
    (line,) = lines_for(trade(order_types=["limit"], max_leverage=50))
    narrowed = line["narrowed"]
    assert "Asked for 50x leverage; granted 20x leverage. Why: Professional client cap." in narrowed, narrowed
    retail = lines_for(trade(order_types=["limit"], max_leverage=50), investor_class="retail")
    assert any(
        str(n).startswith("Asked for 50x leverage; granted 2x leverage. Why: Retail clients")
        for n in retail[0]["narrowed"]
    )  # type: ignore[attr-defined]


def test_a_cap_filled_in_where_none_was_asked_says_so() -> None:
    (line,) = lines_for(trade(order_types=["limit"], max_leverage=5))
    assert line["narrowed"] == [
        "You asked for no limit on the size of open positions; granted 1000000 USD in open positions. "
        "Why: Professional client cap."
    ]


def test_the_lifetime_line() -> None:
    now = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
    text = consent.lifetime_line(now, now + timedelta(minutes=15), now + timedelta(days=30))
    assert text == (
        "Each access token lasts 15 minutes; the app may renew access until 07 January 2027, 01:00 UTC, "
        "unless you sign out first."
    )
