"""A quiet sign-in (no signal fires) to vary one thing at a time, for the pure risk-engine tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from app.risk.geo import StaticCidrTable
from app.risk.history import HistorySummary
from app.risk.signals import RiskInput

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
SUBJECT = "did:pkh:eip155:1:0x52908400098527886E0F7030069857D2E4169EE7"
US_IP = "198.51.100.7"  # "US" in the development table
DE_IP = "203.0.113.9"  # "DE"
HOME = "198.51.100.0/24"
LAPTOP = "device-laptop"
GEO = StaticCidrTable.development()

QUIET_HISTORY = HistorySummary(
    first_seen=NOW - timedelta(days=30),
    network_known=True,  # HOME
    device_known=True,  # LAPTOP
    successes_by_subject=0,
    successes_by_network=0,
    failures_by_subject=0,
    failures_by_network=0,
)

QUIET = RiskInput(
    subject=SUBJECT,
    ip=US_IP,
    network=HOME,
    device=LAPTOP,
    wallet_kind="eoa",
    residence="US",
    history=QUIET_HISTORY,
    now=NOW,
)


def quiet(*, history: dict[str, Any] | None = None, **changes: Any) -> RiskInput:
    """QUIET with ``changes`` applied, and ``history`` changes applied to its history."""
    inp = replace(QUIET, **changes)
    if history:
        inp = replace(inp, history=replace(inp.history, **history))
    return inp
