"""docs/DELEGATION.md's example message is a valid delegation: strict EIP-4361, its ReCap matches its
statement, and it asks for what the text says (perps:trade, one ETH-PERP detail at 5x and 50 000 USDC)."""

from __future__ import annotations

import re
from pathlib import Path

from app import siwe
from app.oauth import delegation
from app.siwe import recap

DOC = Path(__file__).resolve().parents[2] / "docs" / "DELEGATION.md"


def test_the_documented_example_parses_and_says_what_it_asks() -> None:
    text = re.search(r"```text\n(127\.0\.0\.1:8000 wants you.*?)\n```", DOC.read_text(), re.S)
    assert text is not None
    message = siwe.parse(text.group(1))
    assert delegation.delegate_of(message.uri)
    scopes, details = delegation.capabilities(recap.extract(message.statement, message.resources or ()))
    assert scopes == ["perps:trade"]
    assert details == [
        {
            "type": "derivatives_trade",
            "actions": ["cancel_order", "place_order"],
            "instruments": ["ETH-PERP"],
            "max_notional": {"amount": "50000", "currency": "USDC"},
            "max_leverage": 5,
        }
    ]
