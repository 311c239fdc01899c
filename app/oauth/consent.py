"""What the consent screen says: scopes, RFC 9396 authorization details and the compliance facts the tokens
will carry (GDPR art. 13(1)(c), 5(1)(c)), in plain words.

Pure. Descriptions of scopes come from the trading policy file; details are summarised from their fields
(docs/schemas/), so the user reads what the token will allow, not JSON. The compliance facts are those
``app.policy.claims`` releases for the scope, so the screen lists exactly what the tokens carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from app.policy import claims
from app.policy.model import Policy

_FACTS = {
    "residence": "Your country of residence",
    "investor_class": "Your investor class (retail, professional or eligible counterparty)",
    "kyc_level": "Your identity check (KYC) level",
    "flags": "The flags on your compliance record (such as US person, frozen, derivatives appropriateness)",
    "valid_until": "When your compliance record expires",
}


def scope_lines(policy: Policy, scope: str) -> list[dict[str, str]]:
    lines = []
    for name in scope.split():
        rule = policy.scopes.get(name)
        lines.append({"scope": name, "description": rule.description if rule and rule.description else name})
    return lines


def compliance_lines(policy: Policy, scope: str, claim: dict[str, Any] | None = None) -> list[str]:
    """The compliance facts the tokens of a grant of ``scope`` carry, one line each; empty when none.

    Before the sign-in (``claim`` None) the facts are named; after it, the lines give the values the tokens
    will hold, including where the decision was read (a token carries it whenever a decision was made).
    """
    if claim is None:
        return [_FACTS[f] for f in claims.facts_carried(policy, scope)[1]]
    carried = claims.release(policy, scope, claim).access_token or {}
    lines = [f"{_FACTS[f]}: {_value(f, carried[f])}" for f in _FACTS if f in carried]
    if carried:
        lines.append(_provenance(carried))
    return lines


def _value(fact: str, value: Any) -> str:
    if value is None:
        return "unknown"
    if fact == "flags":
        return ", ".join(str(v).replace("_", " ") for v in value) or "none"
    if fact == "valid_until":
        return datetime.fromtimestamp(int(value), UTC).strftime("%d %B %Y, %H:%M UTC")
    return str(value).replace("_", " ")


def _provenance(claim: dict[str, Any]) -> str:
    where = f"chain {claim.get('chain_id')}, block {claim.get('block')}"
    if claim.get("source") == "registry":
        return f"That you have a record in the compliance registry ({where})"
    if claim.get("source") == "none":
        return "That no on-chain compliance check was made"
    return f"That the compliance registry holds no record for you ({where})"


def detail_lines(details: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": d.get("type"), "summary": summarize(d), "detail": d} for d in details]


def summarize(detail: dict[str, Any]) -> str:
    kind = detail.get("type")
    if kind == "derivatives_trade":
        return _trade(detail)
    if kind == "withdrawal":
        return _withdrawal(detail)
    return f"{kind}: {', '.join(sorted(detail))}"


def _words(values: Any) -> str:
    if isinstance(values, list | tuple):
        items = [str(v) for v in values]
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""
    return str(values)


def _trade(d: dict[str, Any]) -> str:
    actions = _words(d.get("actions", ["trade"])) or "trade"
    parts = [f"{actions.capitalize()} {_words(d.get('instruments', ['any instrument']))}"]
    if d.get("order_types"):
        parts.append(f"with {_words(d['order_types'])} orders")
    if d.get("max_leverage") is not None:
        parts.append(f"at most {d['max_leverage']}x leverage")
    notional = d.get("max_notional")
    if isinstance(notional, dict):
        parts.append(f"up to {notional.get('amount')} {notional.get('currency')} in open positions")
    if d.get("subaccount"):
        parts.append(f"on sub-account {d['subaccount']}")
    if d.get("locations"):
        parts.append(f"at {_words(d['locations'])}")
    return " ".join(parts) + "."


def _withdrawal(d: dict[str, Any]) -> str:
    parts = [f"Withdraw {d.get('asset', 'assets')}"]
    amount = d.get("max_amount")
    if isinstance(amount, dict):
        parts.append(f"up to {amount.get('amount')} {amount.get('currency', '')}".rstrip())
    elif amount is not None:
        parts.append(f"up to {amount}")
    if d.get("destinations"):
        parts.append(f"only to {_words(d['destinations'])}")
    return " ".join(parts) + "."
