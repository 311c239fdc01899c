"""What the consent screen says: scopes and RFC 9396 authorization details in plain words.

Pure. Descriptions of scopes come from the trading policy file; details are summarised from their fields
(docs/schemas/), so the user reads what the token will allow, not JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.policy.model import Policy


def scope_lines(policy: Policy, scope: str) -> list[dict[str, str]]:
    lines = []
    for name in scope.split():
        rule = policy.scopes.get(name)
        lines.append({"scope": name, "description": rule.description if rule and rule.description else name})
    return lines


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
