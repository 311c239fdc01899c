"""Builders for policy tests: compliance facts, authentication contexts, a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from app.policy.facts import AuthContext, ComplianceFacts

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WALLET = "urn:portcullis:acr:wallet"
MFA = "urn:portcullis:acr:wallet+mfa"
ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER = "0x1111111111111111111111111111111111111111"
IN_30_DAYS = int((NOW + timedelta(days=30)).timestamp())


def facts(**changes: Any) -> ComplianceFacts:
    """An active registry record: a German professional client, KYC 2, low AML risk, appropriateness test."""
    base = ComplianceFacts(
        eligible_record=True,
        residence="DE",
        investor_class="professional",
        kyc_level=2,
        aml_risk=1,
        flags=frozenset({"appropriateness_derivatives"}),
        valid_until=IN_30_DAYS,
        sanctioned=False,
        revoked=False,
        expired=False,
        account=ADDRESS,
        chain_id=1,
        block=19_000_000,
    )
    if "flags" in changes:
        changes["flags"] = frozenset(changes["flags"])
    return replace(base, **changes)


def auth(acr: str = WALLET, age: int = 10, amr: tuple[str, ...] = ("siwe",)) -> AuthContext:
    return AuthContext(acr=acr, amr=amr, auth_time=NOW - timedelta(seconds=age))


def trade(**fields: Any) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "type": "derivatives_trade",
        "actions": ["place_order"],
        "instruments": ["ETH-PERP"],
    }
    detail.update(fields)
    return detail


def withdrawal(**fields: Any) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "type": "withdrawal",
        "asset": "USDC",
        "max_amount": "1000",
        "destinations": [f"eip155:1:{ADDRESS}"],
    }
    detail.update(fields)
    return detail
