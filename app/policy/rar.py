"""RFC 9396 Rich Authorization Requests: the ``authorization_details`` types of a derivatives venue.

Two types, each with a JSON schema in docs/schemas/: ``derivatives_trade`` (which actions on which
instruments, up to what notional and leverage, with which order types, from which sub-account) and
``withdrawal`` (which asset, up to what amount, to which CAIP-10 destinations). RFC 9396 section 5: an unknown
type, an unknown field, a field of the wrong type or value and a missing required field are all
``invalid_authorization_details``; the error names the offending field. Amounts are decimal strings (RFC
9396's own examples do the same), so no value ever passes through a binary float.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from app.policy.caip import parse_account_id
from app.policy.errors import InvalidAuthorizationDetails
from app.strict_json import JsonRejected, loads

AUTHORIZATION_DETAILS_TYPES = ("derivatives_trade", "withdrawal")
ACTIONS = ("place_order", "amend_order", "cancel_order", "close_position")
ORDER_TYPES = ("market", "limit", "stop_market", "stop_limit", "take_profit")
MAX_DETAILS = 10
MAX_RAW_CHARS = 16_384
MAX_INSTRUMENTS = 50
MAX_DESTINATIONS = 20
MAX_LOCATIONS = 10
MAX_LEVERAGE = 1000
# "ETH-PERP", "BTC-27JUN25-70000-C": upper-case segments joined by dashes.
INSTRUMENT = re.compile(r"[A-Z0-9]{1,20}(-[A-Z0-9]{1,20}){1,4}")
CURRENCY = re.compile(r"[A-Z0-9]{2,10}")
ASSET = CURRENCY
# Up to 30 integer digits and 18 decimals, no sign, no exponent, no leading zeros: one spelling per amount.
DECIMAL = re.compile(r"(0|[1-9][0-9]{0,29})(\.[0-9]{1,18})?")
LOCATION = re.compile(r"https://[\x21-\x7e]{1,500}")

Detail = dict[str, Any]


def parse_authorization_details(raw: str | list[Any] | None) -> list[Detail]:
    """The validated details of a request: a JSON string (the form parameter) or an already decoded list.

    Returns new dicts whose members follow the schema's order; raises InvalidAuthorizationDetails naming the
    offending field.
    """
    if raw is None:
        return []
    value: Any = raw
    if isinstance(raw, str):
        if len(raw) > MAX_RAW_CHARS:
            raise InvalidAuthorizationDetails(
                "authorization_details", f"longer than {MAX_RAW_CHARS} characters"
            )
        try:
            value = loads(raw)
        except JsonRejected as exc:
            raise InvalidAuthorizationDetails("authorization_details", exc.reason) from None
    if not isinstance(value, list):
        raise InvalidAuthorizationDetails("authorization_details", "must be a JSON array of objects")
    if len(value) > MAX_DETAILS:
        raise InvalidAuthorizationDetails("authorization_details", f"more than {MAX_DETAILS} entries")
    return [parse_detail(item, f"authorization_details[{i}]") for i, item in enumerate(value)]


def parse_detail(item: Any, where: str) -> Detail:
    """One authorization details object, validated against its type."""
    if not isinstance(item, dict):
        raise InvalidAuthorizationDetails(where, "must be a JSON object")
    kind = item.get("type")
    if "type" not in item:
        raise InvalidAuthorizationDetails(f"{where}.type", "required field is missing")
    if not isinstance(kind, str) or kind not in TYPES:
        raise InvalidAuthorizationDetails(
            f"{where}.type", f"unknown type; supported: {', '.join(AUTHORIZATION_DETAILS_TYPES)}"
        )
    fields = TYPES[kind]
    for name in item:
        if name != "type" and name not in fields:
            raise InvalidAuthorizationDetails(f"{where}.{_printable(name)}", f"unknown field for type {kind}")
    out: Detail = {"type": kind}
    for name, (required, check) in fields.items():
        if name not in item:
            if required:
                raise InvalidAuthorizationDetails(f"{where}.{name}", "required field is missing")
            continue
        out[name] = check(item[name], f"{where}.{name}")
    return out


# ---------------------------------------------------------------- field checks


def _printable(name: str) -> str:
    return "".join(c for c in name if c.isprintable())[:64]


def _string(value: Any, where: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str):
        raise InvalidAuthorizationDetails(where, "must be a string")
    if pattern.fullmatch(value) is None:
        raise InvalidAuthorizationDetails(where, f"must be {what}")
    return value


def _string_list(
    value: Any, where: str, limit: int, item: Callable[[Any, str], str], *, empty_ok: bool = False
) -> list[str]:
    if not isinstance(value, list):
        raise InvalidAuthorizationDetails(where, "must be an array")
    if not value and not empty_ok:
        raise InvalidAuthorizationDetails(where, "must not be empty")
    if len(value) > limit:
        raise InvalidAuthorizationDetails(where, f"more than {limit} entries")
    out: list[str] = []
    for i, entry in enumerate(value):
        text = item(entry, f"{where}[{i}]")
        if text in out:
            raise InvalidAuthorizationDetails(f"{where}[{i}]", "duplicate value")
        out.append(text)
    return out


def _enum(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str) or value not in choices:
            raise InvalidAuthorizationDetails(where, f"must be one of {', '.join(choices)}")
        return value

    return check


def decimal_amount(value: Any, where: str) -> str:
    """A positive decimal string such as "25000" or "0.5"."""
    text = _string(value, where, DECIMAL, 'a decimal string such as "25000.50"')
    if Decimal(text) == 0:
        raise InvalidAuthorizationDetails(where, "must be greater than zero")
    return text


def _instrument(value: Any, where: str) -> str:
    return _string(value, where, INSTRUMENT, 'an instrument symbol such as "ETH-PERP"')


def _account(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidAuthorizationDetails(where, "must be a string")
    if parse_account_id(value) is None:
        raise InvalidAuthorizationDetails(where, 'must be a CAIP-10 account id such as "eip155:1:0x..."')
    return value


def _location(value: Any, where: str) -> str:
    return _string(value, where, LOCATION, "an https URI")


def _actions(value: Any, where: str) -> list[str]:
    return _string_list(value, where, len(ACTIONS), _enum(ACTIONS))


def _order_types(value: Any, where: str) -> list[str]:
    return _string_list(value, where, len(ORDER_TYPES), _enum(ORDER_TYPES))


def _instruments(value: Any, where: str) -> list[str]:
    return _string_list(value, where, MAX_INSTRUMENTS, _instrument)


def _destinations(value: Any, where: str) -> list[str]:
    return _string_list(value, where, MAX_DESTINATIONS, _account)


def _locations(value: Any, where: str) -> list[str]:
    return _string_list(value, where, MAX_LOCATIONS, _location)


def _leverage(value: Any, where: str) -> int:
    # bool is an int in Python and 2.0 is a float in JSON: neither is a leverage.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAuthorizationDetails(where, "must be an integer")
    if not 1 <= value <= MAX_LEVERAGE:
        raise InvalidAuthorizationDetails(where, f"must be between 1 and {MAX_LEVERAGE}")
    return value


def _notional(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidAuthorizationDetails(where, "must be an object with amount and currency")
    for name in value:
        if name not in ("amount", "currency"):
            raise InvalidAuthorizationDetails(f"{where}.{_printable(name)}", "unknown field")
    for name in ("amount", "currency"):
        if name not in value:
            raise InvalidAuthorizationDetails(f"{where}.{name}", "required field is missing")
    return {
        "amount": decimal_amount(value["amount"], f"{where}.amount"),
        "currency": _string(
            value["currency"], f"{where}.currency", CURRENCY, 'a currency code such as "USD"'
        ),
    }


def _asset(value: Any, where: str) -> str:
    return _string(value, where, ASSET, 'an asset symbol such as "USDC"')


FieldCheck = tuple[bool, Callable[[Any, str], Any]]  # (required, check)

TYPES: Mapping[str, Mapping[str, FieldCheck]] = MappingProxyType(
    {
        "derivatives_trade": MappingProxyType(
            {
                "locations": (False, _locations),
                "actions": (True, _actions),
                "instruments": (True, _instruments),
                "max_notional": (False, _notional),
                "max_leverage": (False, _leverage),
                "order_types": (False, _order_types),
                "subaccount": (False, _account),
            }
        ),
        "withdrawal": MappingProxyType(
            {
                "locations": (False, _locations),
                "asset": (True, _asset),
                "max_amount": (True, decimal_amount),
                "destinations": (True, _destinations),
            }
        ),
    }
)
