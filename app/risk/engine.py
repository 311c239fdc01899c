"""The sign-in risk engine: signals to a score, the score to allow, step-up or deny (docs/RISK.md).

``assess`` is pure: the caller reads the history (``app.risk.history``) and the registry residence first
and hands in ``now``. Every fired signal adds its weight, a non-negative integer, so the score is the sum
of the weights of the signals that fired, and firing one more signal never lowers it. The score is then
placed against two thresholds:

    score < step_up_at              low     allow
    step_up_at <= score < deny_at   medium  step_up   (ask for a second factor)
    deny_at <= score                high    deny
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Final, Literal

from app.risk import signals as sig
from app.risk.geo import IpCountry
from app.risk.signals import Finding, RiskInput, Signal

Level = Literal["low", "medium", "high"]
Action = Literal["allow", "step_up", "deny"]

ACTIONS: Mapping[Level, Action] = MappingProxyType({"low": "allow", "medium": "step_up", "high": "deny"})


@dataclass(frozen=True, slots=True)
class RiskWeights:
    """Points per signal (field names are the signal names); 0 turns a signal off."""

    new_account: int = 20
    new_device: int = 15
    new_network: int = 10
    velocity_subject: int = 20
    velocity_network: int = 20
    failures_subject: int = 20
    failures_network: int = 15
    contract_wallet: int = 10
    geo_mismatch: int = 30

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 0:
                raise ValueError(f"risk weight {f.name} must be a non-negative integer, got {value!r}")

    def of(self, name: str) -> int:
        value: int = getattr(self, name)
        return value


DEFAULT_WEIGHTS: Final = RiskWeights()


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """Weights, thresholds and the limits the signals fire at (defaults: docs/RISK.md)."""

    weights: RiskWeights = DEFAULT_WEIGHTS  # immutable: one shared instance, checked once
    step_up_at: int = 40
    deny_at: int = 70
    window: timedelta = timedelta(hours=1)  # velocity and failure counts look back this far
    new_account_age: timedelta = timedelta(days=1)  # younger than this (or never seen): new_account
    velocity_subject_at: int = 10  # successful sign-ins of the subject within the window, before this one
    velocity_network_at: int = 30  # successful sign-ins from the network (any subject) within the window
    failures_subject_at: int = 3  # refused sign-ins naming the subject within the window
    failures_network_at: int = 10  # refused sign-ins from the network within the window

    def __post_init__(self) -> None:
        if self.step_up_at < 1:
            raise ValueError("risk step_up_at must be at least 1 (0 would step up every sign-in)")
        if self.deny_at < self.step_up_at:
            raise ValueError("risk deny_at must not be below step_up_at")
        for name in (
            "velocity_subject_at",
            "velocity_network_at",
            "failures_subject_at",
            "failures_network_at",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"risk {name} must be at least 1")
        if self.window <= timedelta(0):
            raise ValueError("risk window must be positive")
        if self.new_account_age < timedelta(0):
            raise ValueError("risk new_account_age must not be negative")


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The score, its level and action, and the signals that made it up (in ``SIGNAL_NAMES`` order)."""

    score: int
    level: Level
    action: Action
    signals: tuple[Signal, ...]

    def to_audit(self) -> dict[str, Any]:
        """The decision for an audit entry's ``data``: strings and integers only (docs/AUDIT.md)."""
        return {
            "score": self.score,
            "level": self.level,
            "action": self.action,
            "signals": [{"name": x.name, "points": x.points, "detail": x.detail} for x in self.signals],
        }


def detect(inp: RiskInput, settings: RiskSettings, geo: IpCountry) -> tuple[Finding, ...]:
    """Every signal that fires for ``inp``, in ``SIGNAL_NAMES`` order."""
    window = settings.window
    found = (
        sig.new_account(inp, younger_than=settings.new_account_age),
        sig.new_device(inp),
        sig.new_network(inp),
        sig.velocity_subject(inp, at=settings.velocity_subject_at, window=window),
        sig.velocity_network(inp, at=settings.velocity_network_at, window=window),
        sig.failures_subject(inp, at=settings.failures_subject_at, window=window),
        sig.failures_network(inp, at=settings.failures_network_at, window=window),
        sig.contract_wallet(inp),
        sig.geo_mismatch(inp, geo),
    )
    return tuple(f for f in found if f is not None)


def level_of(score: int, settings: RiskSettings) -> Level:
    if score >= settings.deny_at:
        return "high"
    if score >= settings.step_up_at:
        return "medium"
    return "low"


def decide(findings: tuple[Finding, ...], settings: RiskSettings) -> RiskDecision:
    """Weigh the findings and place the sum against the thresholds. A signal weighted 0 is left out."""
    weighted = tuple(
        Signal(f.name, points, f.detail) for f in findings if (points := settings.weights.of(f.name)) > 0
    )
    score = sum(x.points for x in weighted)
    level = level_of(score, settings)
    return RiskDecision(score=score, level=level, action=ACTIONS[level], signals=weighted)


def assess(inp: RiskInput, settings: RiskSettings, geo: IpCountry) -> RiskDecision:
    """The risk decision for one sign-in (pure: no I/O beyond the in-memory ``geo`` lookup)."""
    return decide(detect(inp, settings, geo), settings)
