"""What the consent screen says: scopes, RFC 9396 authorization details and the compliance facts the tokens
will carry (GDPR art. 13(1)(c), 5(1)(c)), in plain words.

Pure. Descriptions of scopes come from the trading policy file; details are summarised from their fields
(docs/schemas/), so the user reads what the token will allow, not JSON. The compliance facts are those
``app.policy.claims`` releases for the scope, so the screen lists exactly what the tokens carry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
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


def lifetime_line(now: datetime, access_until: datetime, session_until: datetime) -> str:
    """For how long: one access token's life, and until when the app may renew it (the session's end,
    never past the compliance record's validUntil or the policy's cap: ``Grant.expiry``)."""
    until = session_until.astimezone(UTC).strftime("%d %B %Y, %H:%M UTC")
    return (
        f"Each access token lasts {_duration(access_until - now)}; the app may renew access until {until}, "
        "unless you sign out first."
    )


def _duration(span: timedelta) -> str:
    seconds = max(1, int(span.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}" + ("s" if n != 1 else "")
    return f"{seconds} second" + ("s" if seconds != 1 else "")


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


# RFC 9396 identifiers of docs/schemas/ as words.
ACTIONS = {
    "place_order": "place orders",
    "amend_order": "amend orders",
    "cancel_order": "cancel orders",
    "close_position": "close positions",
}
ORDER_TYPES = {
    "market": "market",
    "limit": "limit",
    "stop_market": "stop-market",
    "stop_limit": "stop-limit",
    "take_profit": "take-profit",
}
_DETAIL = re.compile(r"authorization_details\[(\d+)\](?:\.([a-z_]+))?(?:\[([^\]]*)\])?")


def detail_lines(
    details: Sequence[dict[str, Any]], policy_audit: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Each granted detail in words; with the policy decision (``PolicyDecision.to_audit``), also where it
    was narrowed: what was asked, what is granted and why."""
    changes = _changes(policy_audit) if policy_audit else {}
    return [
        {"type": d.get("type"), "summary": summarize(d), "detail": d, "narrowed": changes.get(i, [])}
        for i, d in enumerate(details)
    ]


def _changes(audit: dict[str, Any]) -> dict[int, list[str]]:
    """Lines per granted detail (by its index among the granted) for every narrowed or dropped part."""
    requested: list[dict[str, Any]] = audit.get("inputs", {}).get("authorization_details", [])
    granted: list[dict[str, Any]] = audit.get("granted_details", [])
    whole = {
        m.group(1) for r in audit.get("refused", []) if (m := _DETAIL.fullmatch(r["item"])) and not m.group(2)
    }
    position: dict[int, int] = {}
    for i in range(len(requested)):
        if str(i) not in whole:
            position[i] = len(position)
    lines: dict[int, list[str]] = {}
    for entry, dropped in [(n, False) for n in audit.get("narrowed", [])] + [
        (r, True) for r in audit.get("refused", [])
    ]:
        m = _DETAIL.fullmatch(entry["item"])
        if m is None or m.group(2) is None or int(m.group(1)) not in position:
            continue
        index = int(m.group(1))
        at = position[index]
        if at >= len(granted) or index >= len(requested):
            continue
        line = _change(m.group(2), m.group(3), requested[index], granted[at], entry["reason"], dropped)
        lines.setdefault(at, []).append(line)
    return lines


def _why(reason: str) -> str:
    """The rule's own reason: the policy file's text after "max_leverage 50 narrowed to 20: "."""
    return reason.split(": ", 1)[1] if ": " in reason else reason


def _change(
    field: str, part: str | None, asked: dict[str, Any], granted: dict[str, Any], reason: str, dropped: bool
) -> str:
    why = _why(reason)
    if dropped:
        words = {"order_types": ORDER_TYPES, "actions": ACTIONS}.get(field, {})
        name = words.get(part or "", (part or field).replace("_", " "))
        kind = {"order_types": f"{name} orders", "actions": name}.get(field, name)
        return f"Not granted: {kind}. Why: {_sentence(why)}"
    was, now = _field_words(field, asked.get(field)), _field_words(field, granted.get(field))
    if asked.get(field) is None:
        limit = _FIELD_NAMES.get(field, field)
        return f"You asked for no limit on {limit}; granted {now}. Why: {_sentence(why)}"
    return f"Asked for {was}; granted {now}. Why: {_sentence(why)}"


_FIELD_NAMES = {
    "max_leverage": "leverage",
    "max_notional": "the size of open positions",
    "max_amount": "the amount",
    "order_types": "order types",
}


def _field_words(field: str, value: Any) -> str:
    if field == "max_leverage":
        return f"{value}x leverage"
    if field == "max_notional" and isinstance(value, dict):
        return f"{value.get('amount')} {value.get('currency')} in open positions"
    if field == "max_amount":
        return f"up to {value}"
    if field == "order_types" and isinstance(value, list):
        return _words([ORDER_TYPES.get(str(v), str(v)) for v in value]) + " orders"
    return str(value)


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return (text[:1].upper() + text[1:] + ".") if text else ""


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
    actions = _words([ACTIONS.get(str(a), str(a)) for a in d.get("actions", ["trade"])]) or "trade"
    parts = [f"{actions.capitalize()} on {_words(d.get('instruments', ['any instrument']))}"]
    if d.get("order_types"):
        parts.append(f"with {_words([ORDER_TYPES.get(str(t), str(t)) for t in d['order_types']])} orders")
    if d.get("max_leverage") is not None:
        parts.append(f"at most {d['max_leverage']}x leverage")
    notional = d.get("max_notional")
    if isinstance(notional, dict):
        parts.append(f"up to {notional.get('amount')} {notional.get('currency')} in open positions")
    if d.get("subaccount"):
        parts.append(f"on sub-account {d['subaccount']}")
    if d.get("locations"):
        parts.append(f"at {_words(d['locations'])}")
    return ", ".join(parts) + "."


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
