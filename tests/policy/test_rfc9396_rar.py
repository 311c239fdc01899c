"""RFC 9396 authorization details: parsing and validation (section 5 ``invalid_authorization_details``
naming the field), and the published JSON schemas in docs/schemas/ agreeing with the parser on examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.policy.errors import InvalidAuthorizationDetails
from app.policy.rar import (
    ACTIONS,
    AUTHORIZATION_DETAILS_TYPES,
    ORDER_TYPES,
    TYPES,
    parse_authorization_details,
)
from tests.policy.helpers import ADDRESS, trade, withdrawal
from tests.policy.jsonschema_subset import is_valid

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
DEST = f"eip155:1:{ADDRESS}"

VALID: list[dict[str, Any]] = [
    trade(),
    trade(
        actions=["place_order", "amend_order", "cancel_order", "close_position"],
        instruments=["ETH-PERP", "BTC-27JUN26-90000-C"],
        max_notional={"amount": "250000.50", "currency": "USDC"},
        max_leverage=1000,
        order_types=["limit"],
        subaccount=f"eip155:42161:{ADDRESS}",
        locations=["https://api.exchange.example/"],
    ),
    trade(max_notional={"amount": "0.000000000000000001", "currency": "USD"}, max_leverage=1),
    withdrawal(),
    withdrawal(max_amount="0.5", destinations=[DEST, "cosmos:cosmoshub-4:cosmos1abc"]),
]

# (detail, offending field, problem, whether the JSON schema can see it too)
INVALID: list[tuple[Any, str, str, bool]] = [
    ("nope", "authorization_details[0]", "must be a JSON object", True),
    ({"actions": ["place_order"]}, "authorization_details[0].type", "required field is missing", True),
    (
        {"type": "payment_initiation"},
        "authorization_details[0].type",
        "unknown type; supported: derivatives_trade, withdrawal",
        True,
    ),
    (
        trade(colour="red"),
        "authorization_details[0].colour",
        "unknown field for type derivatives_trade",
        True,
    ),
    (
        {"type": "derivatives_trade", "instruments": ["ETH-PERP"]},
        "authorization_details[0].actions",
        "required field is missing",
        True,
    ),
    (trade(actions=[]), "authorization_details[0].actions", "must not be empty", True),
    (trade(actions="place_order"), "authorization_details[0].actions", "must be an array", True),
    (
        trade(actions=["place_order", "withdraw"]),
        "authorization_details[0].actions[1]",
        "must be one of place_order, amend_order, cancel_order, close_position",
        True,
    ),
    (
        trade(actions=["place_order", "place_order"]),
        "authorization_details[0].actions[1]",
        "duplicate value",
        True,
    ),
    (
        trade(instruments=["eth-perp"]),
        "authorization_details[0].instruments[0]",
        'must be an instrument symbol such as "ETH-PERP"',
        True,
    ),
    (
        trade(instruments=["ETHPERP"]),
        "authorization_details[0].instruments[0]",
        'must be an instrument symbol such as "ETH-PERP"',
        True,
    ),
    (
        trade(instruments=[f"X{i}-PERP" for i in range(51)]),
        "authorization_details[0].instruments",
        "more than 50 entries",
        True,
    ),
    (trade(max_leverage=2.0), "authorization_details[0].max_leverage", "must be an integer", True),
    (trade(max_leverage=True), "authorization_details[0].max_leverage", "must be an integer", True),
    (trade(max_leverage="5"), "authorization_details[0].max_leverage", "must be an integer", True),
    (trade(max_leverage=0), "authorization_details[0].max_leverage", "must be between 1 and 1000", True),
    (trade(max_leverage=1001), "authorization_details[0].max_leverage", "must be between 1 and 1000", True),
    (
        trade(max_notional="1000"),
        "authorization_details[0].max_notional",
        "must be an object with amount and currency",
        True,
    ),
    (
        trade(max_notional={"amount": "1"}),
        "authorization_details[0].max_notional.currency",
        "required field is missing",
        True,
    ),
    (
        trade(max_notional={"amount": "1", "currency": "USD", "fx": "x"}),
        "authorization_details[0].max_notional.fx",
        "unknown field",
        True,
    ),
    (
        trade(max_notional={"amount": 1000, "currency": "USD"}),
        "authorization_details[0].max_notional.amount",
        "must be a string",
        True,
    ),
    (
        trade(max_notional={"amount": "1e5", "currency": "USD"}),
        "authorization_details[0].max_notional.amount",
        'must be a decimal string such as "25000.50"',
        True,
    ),
    (
        trade(max_notional={"amount": "-5", "currency": "USD"}),
        "authorization_details[0].max_notional.amount",
        'must be a decimal string such as "25000.50"',
        True,
    ),
    (
        trade(max_notional={"amount": "007", "currency": "USD"}),
        "authorization_details[0].max_notional.amount",
        'must be a decimal string such as "25000.50"',
        True,
    ),
    (
        trade(max_notional={"amount": "0.00", "currency": "USD"}),
        "authorization_details[0].max_notional.amount",
        "must be greater than zero",
        True,
    ),
    (
        trade(max_notional={"amount": "1", "currency": "usd"}),
        "authorization_details[0].max_notional.currency",
        'must be a currency code such as "USD"',
        True,
    ),
    (
        trade(order_types=["iceberg"]),
        "authorization_details[0].order_types[0]",
        "must be one of market, limit, stop_market, stop_limit, take_profit",
        True,
    ),
    (
        trade(subaccount="0xabc"),
        "authorization_details[0].subaccount",
        'must be a CAIP-10 account id such as "eip155:1:0x..."',
        True,
    ),
    (
        trade(subaccount="eip155:1:0x1234"),
        "authorization_details[0].subaccount",
        'must be a CAIP-10 account id such as "eip155:1:0x..."',
        False,
    ),
    (
        trade(locations=["http://api.example/"]),
        "authorization_details[0].locations[0]",
        "must be an https URI",
        True,
    ),
    (
        {"type": "withdrawal", "asset": "USDC", "destinations": [DEST]},
        "authorization_details[0].max_amount",
        "required field is missing",
        True,
    ),
    (withdrawal(max_amount=100), "authorization_details[0].max_amount", "must be a string", True),
    (
        withdrawal(asset="usdc"),
        "authorization_details[0].asset",
        'must be an asset symbol such as "USDC"',
        True,
    ),
    (withdrawal(destinations=[]), "authorization_details[0].destinations", "must not be empty", True),
    (
        withdrawal(destinations=[DEST, DEST]),
        "authorization_details[0].destinations[1]",
        "duplicate value",
        True,
    ),
    (
        withdrawal(destinations=["eip155:1:0xZZ"]),
        "authorization_details[0].destinations[0]",
        'must be a CAIP-10 account id such as "eip155:1:0x..."',
        False,
    ),
    (
        withdrawal(instruments=["ETH-PERP"]),
        "authorization_details[0].instruments",
        "unknown field for type withdrawal",
        True,
    ),
]


@pytest.mark.parametrize("detail", VALID)
def test_valid_details_parse(detail: dict[str, Any]) -> None:
    assert parse_authorization_details([detail]) == [detail]
    assert parse_authorization_details(json.dumps([detail])) == [detail]


@pytest.mark.parametrize(("detail", "where", "problem", "_schema"), INVALID)
def test_invalid_details_name_the_field(detail: Any, where: str, problem: str, _schema: bool) -> None:
    with pytest.raises(InvalidAuthorizationDetails) as info:
        parse_authorization_details([detail])
    assert (info.value.field, info.value.problem) == (where, problem)
    assert info.value.to_json() == {
        "error": "invalid_authorization_details",
        "error_description": f"{where}: {problem}",
    }
    assert info.value.status == 400


def test_field_path_counts_entries() -> None:
    with pytest.raises(InvalidAuthorizationDetails) as info:
        parse_authorization_details([trade(), withdrawal(asset="x")])
    assert info.value.field == "authorization_details[1].asset"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('[{"type": "withdrawal", "max_amount": NaN}]', "not valid JSON"),
        ('{"type": "withdrawal"}', "must be a JSON array of objects"),
        (json.dumps([trade()] * 11), "more than 10 entries"),
        ("[" + " " * 20_000 + "]", "longer than 16384 characters"),
    ],
)
def test_invalid_top_level(raw: str, problem: str) -> None:
    with pytest.raises(InvalidAuthorizationDetails) as info:
        parse_authorization_details(raw)
    assert (info.value.field, info.value.problem) == ("authorization_details", problem)


def test_absent_and_empty() -> None:
    assert parse_authorization_details(None) == []
    assert parse_authorization_details("[]") == []


def test_parse_returns_copies_in_schema_order() -> None:
    raw = {
        "max_leverage": 3,
        "instruments": ["ETH-PERP"],
        "type": "derivatives_trade",
        "actions": ["place_order"],
    }
    parsed = parse_authorization_details([raw])[0]
    assert list(parsed) == ["type", "actions", "instruments", "max_leverage"]
    parsed["instruments"].append("BTC-PERP")
    assert raw["instruments"] == ["ETH-PERP"]


# ---------------------------------------------------------------- the published schemas


def _schema(kind: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{kind}.schema.json").read_text())


@pytest.mark.parametrize("kind", AUTHORIZATION_DETAILS_TYPES)
def test_schema_lists_the_parsers_fields(kind: str) -> None:
    schema = _schema(kind)
    assert schema["properties"]["type"] == {"const": kind}
    assert set(schema["properties"]) == {"type", *TYPES[kind]}
    assert set(schema["required"]) == {"type", *(name for name, (req, _) in TYPES[kind].items() if req)}
    assert schema["additionalProperties"] is False
    for example in schema["examples"]:
        assert parse_authorization_details([example]) == [example]


def test_schema_enums_match() -> None:
    props = _schema("derivatives_trade")["properties"]
    assert tuple(props["actions"]["items"]["enum"]) == ACTIONS
    assert tuple(props["order_types"]["items"]["enum"]) == ORDER_TYPES


@pytest.mark.parametrize("detail", VALID)
def test_schema_accepts_what_the_parser_accepts(detail: dict[str, Any]) -> None:
    assert is_valid(_schema(detail["type"]), detail)


@pytest.mark.parametrize(("detail", "where", "_problem", "schema_sees_it"), INVALID)
def test_schema_rejects_what_the_parser_rejects(
    detail: Any, where: str, _problem: str, schema_sees_it: bool
) -> None:
    kind = detail.get("type") if isinstance(detail, dict) else None
    if kind not in AUTHORIZATION_DETAILS_TYPES:
        assert not any(is_valid(_schema(k), detail) for k in AUTHORIZATION_DETAILS_TYPES)
        return
    # CAIP-10 schemas are namespace-agnostic; only the parser checks eip155 addresses.
    assert is_valid(_schema(kind), detail) is not schema_sees_it
