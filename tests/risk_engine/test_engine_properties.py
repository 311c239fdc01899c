"""Properties of the risk engine (hypothesis): one more signal never lowers the score.

Two levels: ``decide`` over any set of findings and any weights, and ``assess`` over any sign-in, where each
change below can only make one more signal fire (more counts, a younger account, a forgotten device or
network, a contract wallet, a residence other than the IP's country).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.risk.engine import RiskSettings, RiskWeights, assess, decide
from app.risk.history import HistorySummary
from app.risk.signals import SIGNAL_NAMES, Finding, RiskInput
from tests.risk_engine.helpers import GEO, NOW, SUBJECT

NETWORKS = ["198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24", "10.0.0.0/24"]
DEVICES = ["d1", "d2", "d3"]
IPS = ["198.51.100.7", "203.0.113.9", "192.0.2.1", "10.0.0.1", "2001:db8::1", None]
COUNTRIES = ["US", "DE", "FR", "JP", "CH", None]

weights = st.builds(RiskWeights, **{name: st.integers(0, 100) for name in SIGNAL_NAMES})


@st.composite
def risk_settings(draw: st.DrawFn) -> RiskSettings:
    step_up = draw(st.integers(1, 200))
    return RiskSettings(
        weights=draw(weights),
        step_up_at=step_up,
        deny_at=draw(st.integers(step_up, 300)),
        new_account_age=timedelta(hours=draw(st.integers(0, 72))),
        velocity_subject_at=draw(st.integers(1, 20)),
        velocity_network_at=draw(st.integers(1, 50)),
        failures_subject_at=draw(st.integers(1, 10)),
        failures_network_at=draw(st.integers(1, 20)),
    )


histories = st.builds(
    HistorySummary,
    first_seen=st.none() | st.integers(0, 24 * 90).map(lambda h: NOW - timedelta(hours=h)),
    network_known=st.booleans(),
    device_known=st.booleans(),
    successes_by_subject=st.integers(0, 40),
    successes_by_network=st.integers(0, 80),
    failures_by_subject=st.integers(0, 20),
    failures_by_network=st.integers(0, 40),
)

inputs = st.builds(
    RiskInput,
    subject=st.just(SUBJECT),
    ip=st.sampled_from(IPS),
    network=st.none() | st.sampled_from(NETWORKS),
    device=st.none() | st.sampled_from(DEVICES),
    wallet_kind=st.sampled_from(["eoa", "contract"]),
    residence=st.sampled_from(COUNTRIES),
    history=histories,
    now=st.just(NOW),
)


def _history(inp: RiskInput, **changes: Any) -> RiskInput:
    return replace(inp, history=replace(inp.history, **changes))


def _younger(inp: RiskInput) -> RiskInput:
    first = inp.history.first_seen
    # A later first sign-in, never none at all: "no history" is a different situation (see test_engine).
    return inp if first is None else _history(inp, first_seen=max(first, NOW - timedelta(minutes=5)))


def _elsewhere(inp: RiskInput) -> RiskInput:
    country = GEO.country(inp.ip) if inp.ip else None
    return replace(inp, residence="CH" if country != "CH" else "US")


def _more(**extra: int) -> Callable[[RiskInput], RiskInput]:
    def change(inp: RiskInput) -> RiskInput:
        return _history(inp, **{name: getattr(inp.history, name) + n for name, n in extra.items()})

    return change


WORSENINGS: dict[str, Callable[[RiskInput], RiskInput]] = {
    "more sign-ins by the subject": _more(successes_by_subject=7),
    "more sign-ins from the network": _more(successes_by_network=9),
    "more subject failures": _more(failures_by_subject=3),
    "more network failures": _more(failures_by_network=5),
    "a younger account": _younger,
    "device forgotten": lambda i: _history(i, device_known=False),
    "network forgotten": lambda i: _history(i, network_known=False),
    "no device cookie": lambda i: replace(i, device=None),
    "a contract wallet": lambda i: replace(i, wallet_kind="contract"),
    "residence elsewhere": _elsewhere,
}


@given(weights, st.sets(st.sampled_from(SIGNAL_NAMES)), st.sampled_from(SIGNAL_NAMES))
def test_decide_never_lowers_the_score_for_one_more_signal(
    w: RiskWeights, fired: set[str], added: str
) -> None:
    settings = RiskSettings(weights=w)

    def findings(names: set[str]) -> tuple[Finding, ...]:
        return tuple(Finding(n, "x") for n in SIGNAL_NAMES if n in names)

    before, after = decide(findings(fired), settings), decide(findings(fired | {added}), settings)
    assert after.score >= before.score
    assert before.score == sum(w.of(n) for n in fired)
    assert ["low", "medium", "high"].index(after.level) >= ["low", "medium", "high"].index(before.level)


@given(inputs, risk_settings(), st.sampled_from(sorted(WORSENINGS)))
def test_assess_never_lowers_the_score_when_a_signal_is_added(
    inp: RiskInput, settings: RiskSettings, change: str
) -> None:
    before = assess(inp, settings, GEO)
    after = assess(WORSENINGS[change](inp), settings, GEO)
    assert after.score >= before.score, change
    assert {s.name for s in before.signals} <= {s.name for s in after.signals}, change
    assert before.score == sum(s.points for s in before.signals)
    assert all(s.points > 0 for s in before.signals)


@given(inputs, risk_settings())
def test_the_action_follows_the_score(inp: RiskInput, settings: RiskSettings) -> None:
    decision = assess(inp, settings, GEO)
    if decision.score >= settings.deny_at:
        assert (decision.level, decision.action) == ("high", "deny")
    elif decision.score >= settings.step_up_at:
        assert (decision.level, decision.action) == ("medium", "step_up")
    else:
        assert (decision.level, decision.action) == ("low", "allow")
