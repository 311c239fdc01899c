"""The risk engine, table-driven: each signal alone, the thresholds, a first-ever sign-in, the audit form."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest

from app.risk.engine import RiskDecision, RiskSettings, RiskWeights, assess, decide, level_of
from app.risk.history import EMPTY_HISTORY
from app.risk.signals import SIGNAL_NAMES, Finding
from tests.risk_engine.helpers import DE_IP, GEO, NOW, QUIET, quiet

DEFAULTS = RiskSettings()

# (signal, the one change to the quiet sign-in that fires it)
EACH_SIGNAL: list[tuple[str, dict[str, Any]]] = [
    ("new_account", {"history": {"first_seen": NOW - timedelta(hours=23)}}),
    ("new_device", {"device": "device-phone", "history": {"device_known": False}}),
    ("new_device", {"device": None}),
    ("new_network", {"network": "203.0.113.0/24", "history": {"network_known": False}}),
    ("velocity_subject", {"history": {"successes_by_subject": 10}}),
    ("velocity_network", {"history": {"successes_by_network": 30}}),
    ("failures_subject", {"history": {"failures_by_subject": 3}}),
    ("failures_network", {"history": {"failures_by_network": 10}}),
    ("contract_wallet", {"wallet_kind": "contract"}),
    ("geo_mismatch", {"residence": "DE"}),
    ("geo_mismatch", {"ip": DE_IP}),
]

# Just below each threshold: nothing fires.
JUST_BELOW: list[dict[str, Any]] = [
    {"history": {"first_seen": NOW - timedelta(days=1)}},
    {"history": {"successes_by_subject": 9}},
    {"history": {"successes_by_network": 29}},
    {"history": {"failures_by_subject": 2}},
    {"history": {"failures_by_network": 9}},
    {"residence": "us"},  # case does not matter
    {"residence": None},  # no registry residence: no comparison
    {"ip": "10.1.2.3"},  # private range: no country
    {"ip": None, "network": None},  # no client address at all
    {"ip": "not-an-ip"},
]


# Neither the device nor the network of the sign-in appears in the subject's history.
NEW_PLACES = {"device_known": False, "network_known": False}


def names(decision: RiskDecision) -> list[str]:
    return [s.name for s in decision.signals]


def test_the_quiet_sign_in_scores_zero() -> None:
    decision = assess(QUIET, DEFAULTS, GEO)
    assert (decision.score, decision.level, decision.action, decision.signals) == (0, "low", "allow", ())


@pytest.mark.parametrize(("signal", "change"), EACH_SIGNAL)
def test_each_signal_alone_adds_its_weight(signal: str, change: dict[str, Any]) -> None:
    decision = assess(quiet(**change), DEFAULTS, GEO)
    assert names(decision) == [signal]
    assert decision.score == DEFAULTS.weights.of(signal) == decision.signals[0].points
    assert decision.signals[0].detail


@pytest.mark.parametrize(("signal", "change"), EACH_SIGNAL)
def test_each_signal_follows_its_own_weight(signal: str, change: dict[str, Any]) -> None:
    weights = RiskWeights(**{name: 7 for name in SIGNAL_NAMES} | {signal: 33})
    decision = assess(quiet(**change), RiskSettings(weights=weights), GEO)
    assert decision.score == 33 and names(decision) == [signal]


@pytest.mark.parametrize(("signal", "change"), EACH_SIGNAL)
def test_a_signal_weighted_zero_is_off(signal: str, change: dict[str, Any]) -> None:
    weights = dataclasses.replace(RiskWeights(), **{signal: 0})
    decision = assess(quiet(**change), RiskSettings(weights=weights), GEO)
    assert decision.score == 0 and decision.signals == ()


@pytest.mark.parametrize("change", JUST_BELOW)
def test_nothing_fires_just_below_a_threshold(change: dict[str, Any]) -> None:
    assert assess(quiet(**change), DEFAULTS, GEO).signals == ()


def test_the_geo_detail_names_countries_never_the_address() -> None:
    (signal,) = assess(quiet(residence="DE"), DEFAULTS, GEO).signals
    assert signal.detail == "IP country US, registry residence DE"
    assert "198.51.100" not in json.dumps(assess(quiet(residence="DE"), DEFAULTS, GEO).to_audit())


@pytest.mark.parametrize(
    ("score", "level", "action"),
    [
        (0, "low", "allow"),
        (39, "low", "allow"),
        (40, "medium", "step_up"),
        (69, "medium", "step_up"),
        (70, "high", "deny"),
        (500, "high", "deny"),
    ],
)
def test_thresholds(score: int, level: str, action: str) -> None:
    assert level_of(score, DEFAULTS) == level
    weights = RiskWeights(**{name: 0 for name in SIGNAL_NAMES} | {"geo_mismatch": score})
    decision = decide((Finding("geo_mismatch", "x"),), RiskSettings(weights=weights))
    assert (decision.score, decision.level, decision.action) == (score, level, action)


@pytest.mark.parametrize(
    ("change", "score", "action"),
    [
        # a known user on a new laptop at a new network: allow
        ({"device": "device-new", "network": "192.0.2.0/24", "history": NEW_PLACES}, 25, "allow"),
        # ... abroad (IP country differs from residence): step up
        (
            {"device": "device-new", "network": "203.0.113.0/24", "ip": DE_IP, "history": NEW_PLACES},
            55,
            "step_up",
        ),
        # ... after three refused attempts naming the subject: deny
        (
            {
                "device": "device-new",
                "network": "203.0.113.0/24",
                "ip": DE_IP,
                "history": {**NEW_PLACES, "failures_by_subject": 3},
            },
            75,
            "deny",
        ),
    ],
)
def test_signals_add_up_to_the_decision(change: dict[str, Any], score: int, action: str) -> None:
    decision = assess(quiet(**change), DEFAULTS, GEO)
    assert (decision.score, decision.action) == (score, action)
    assert decision.score == sum(s.points for s in decision.signals)


def test_first_ever_sign_in_counts_as_a_new_account_only() -> None:
    # No history: new_device and new_network have nothing to compare with and stay silent.
    first = quiet(history=dataclasses.asdict(EMPTY_HISTORY), device=None, network="192.0.2.0/24")
    decision = assess(first, DEFAULTS, GEO)
    assert names(decision) == ["new_account"]
    assert decision.signals[0].detail == "first sign-in of this subject"
    assert (decision.score, decision.action) == (20, "allow")
    # ... with a contract wallet still allowed; from abroad it steps up.
    assert assess(dataclasses.replace(first, wallet_kind="contract"), DEFAULTS, GEO).action == "allow"
    abroad = assess(dataclasses.replace(first, ip=DE_IP), DEFAULTS, GEO)
    assert (names(abroad), abroad.score, abroad.action) == (["new_account", "geo_mismatch"], 50, "step_up")


def test_a_first_seen_in_the_future_is_still_new() -> None:
    # Clock skew between nodes must not produce a negative age in the detail.
    decision = assess(quiet(history={"first_seen": NOW + timedelta(seconds=5)}), DEFAULTS, GEO)
    assert names(decision) == ["new_account"] and "first seen 0 s ago" in decision.signals[0].detail


def test_signals_are_listed_in_a_fixed_order() -> None:
    everything = quiet(
        device=None,
        network="203.0.113.0/24",
        ip=DE_IP,
        wallet_kind="contract",
        history={
            "first_seen": NOW - timedelta(hours=1),
            "network_known": False,
            "successes_by_subject": 99,
            "successes_by_network": 99,
            "failures_by_subject": 99,
            "failures_by_network": 99,
        },
    )
    decision = assess(everything, DEFAULTS, GEO)
    assert names(decision) == list(SIGNAL_NAMES)
    assert decision.score == sum(DEFAULTS.weights.of(n) for n in SIGNAL_NAMES) == 160


def test_to_audit_is_json_safe_without_floats() -> None:
    decision = assess(quiet(residence="DE", wallet_kind="contract"), DEFAULTS, GEO)
    record = decision.to_audit()
    assert record == {
        "score": 40,
        "level": "medium",
        "action": "step_up",
        "signals": [
            {
                "name": "contract_wallet",
                "points": 10,
                "detail": "smart-contract wallet (ERC-1271/ERC-6492 signature)",
            },
            {"name": "geo_mismatch", "points": 30, "detail": "IP country US, registry residence DE"},
        ],
    }
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert json.loads(text, parse_float=lambda _: pytest.fail("float in the audit form")) == record


def test_weight_fields_are_the_signal_names() -> None:
    assert tuple(f.name for f in dataclasses.fields(RiskWeights)) == SIGNAL_NAMES


@pytest.mark.parametrize(
    "bad",
    [
        {"step_up_at": 0},
        {"step_up_at": 50, "deny_at": 49},
        {"velocity_subject_at": 0},
        {"failures_network_at": 0},
        {"window": timedelta(0)},
        {"new_account_age": timedelta(seconds=-1)},
    ],
)
def test_settings_refuse_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="risk"):
        RiskSettings(**bad)


@pytest.mark.parametrize("weight", [-1, 1.5, True])
def test_weights_are_non_negative_integers(weight: Any) -> None:
    with pytest.raises(ValueError, match="geo_mismatch"):
        RiskWeights(geo_mismatch=weight)
