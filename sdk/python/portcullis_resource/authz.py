"""What a validated token allows: scopes (RFC 6750 section 3.1), RFC 9396 ``authorization_details`` of the
two types Portcullis grants (docs/POLICY.md), and RFC 9470 step-up (``acr``, ``max_age``).

Pure: each check takes the token (and ``now``) and returns nothing or raises the refusal a client can act
on. The details are the granted, narrowed ones Portcullis put in the token; amounts are decimal strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from portcullis_resource.errors import (
    InsufficientAuthorizationDetails,
    InsufficientScope,
    InsufficientUserAuthentication,
)
from portcullis_resource.tokens import AccessToken


def require_scope(token: AccessToken, *scopes: str) -> None:
    """Every one of ``scopes`` must be granted; else 403 ``insufficient_scope`` naming the missing ones."""
    missing = [s for s in scopes if s not in token.scopes]
    if missing:
        raise InsufficientScope(
            f"the token lacks the scope {' '.join(missing)}", " ".join(scopes), dpop=token.jkt is not None
        )


def require_acr(
    token: AccessToken, acr_values: Iterable[str] = (), *, max_age: int | None = None, now: float
) -> None:
    """RFC 9470: the token's ``acr`` must be one of ``acr_values`` (when given) and its ``auth_time`` no
    older than ``max_age`` seconds; else 401 ``insufficient_user_authentication`` with what would do."""
    wanted = tuple(acr_values)
    weak = bool(wanted) and token.acr not in wanted
    stale = max_age is not None and (token.auth_time is None or now - token.auth_time > max_age)
    if weak or stale:
        why = "a stronger authentication is required" if weak else "a more recent authentication is required"
        raise InsufficientUserAuthentication(
            why, acr_values=" ".join(wanted) or None, max_age=max_age, dpop=token.jkt is not None
        )


def _decimal(value: Any, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name} must be a decimal number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{name} must be a non-negative decimal number")
    return number


def _refuse(token: AccessToken, field: str, reason: str) -> InsufficientAuthorizationDetails:
    return InsufficientAuthorizationDetails(f"{field}: {reason}", field, dpop=token.jkt is not None)


def _trade(detail: dict[str, Any], order: dict[str, Any]) -> tuple[str, str] | None:
    """The first field of ``order`` that ``detail`` does not cover, with why; None if it covers it."""
    if order["instrument"] not in detail.get("instruments", []):
        return "instrument", f"{order['instrument']} is not among the granted instruments"
    if order["action"] not in detail.get("actions", []):
        return "action", f"{order['action']} is not among the granted actions"
    order_type = order.get("order_type")
    if order_type is not None and "order_types" in detail and order_type not in detail["order_types"]:
        return "order_type", f"{order_type} is not among the granted order types"
    leverage = order.get("leverage")
    cap = detail.get("max_leverage")
    if leverage is not None and cap is not None and _decimal(leverage, "leverage") > Decimal(cap):
        return "leverage", f"leverage {leverage} exceeds the granted max_leverage {cap}"
    notional = order.get("notional")
    limit = detail.get("max_notional")
    if notional is not None and isinstance(limit, dict):
        currency = order.get("currency")
        if currency != limit.get("currency"):
            return "currency", f"currency {currency} is not the granted {limit.get('currency')}"
        if _decimal(notional, "notional") > Decimal(str(limit.get("amount"))):
            return "notional", f"notional {notional} exceeds the granted max_notional {limit.get('amount')}"
    return None


def _withdrawal(detail: dict[str, Any], request: dict[str, Any]) -> tuple[str, str] | None:
    if request["asset"] != detail.get("asset"):
        return "asset", f"{request['asset']} is not the granted asset"
    amount = request.get("amount")
    if amount is not None and _decimal(amount, "amount") > Decimal(str(detail.get("max_amount"))):
        return "amount", f"amount {amount} exceeds the granted max_amount {detail.get('max_amount')}"
    destination = request.get("destination")
    granted = [str(d).lower() for d in detail.get("destinations", [])]
    if destination is not None and str(destination).lower() not in granted:
        return "destination", f"{destination} is not among the granted destinations"
    return None


_MATCHERS = {"derivatives_trade": (_trade, ("instrument", "action")), "withdrawal": (_withdrawal, ("asset",))}


def require_detail(token: AccessToken, detail_type: str, **request: Any) -> dict[str, Any]:
    """The granted ``authorization_details`` entry of ``detail_type`` that covers ``request``; else 403
    ``insufficient_authorization_details`` naming the first violated field of the closest entry.

    ``derivatives_trade``: instrument, action (required), leverage, notional, currency, order_type.
    ``withdrawal``: asset (required), amount, destination (CAIP-10).
    """
    if detail_type not in _MATCHERS:
        raise ValueError(f"unknown authorization_details type {detail_type!r}")
    matcher, required = _MATCHERS[detail_type]
    for name in required:
        if request.get(name) is None:
            raise ValueError(f"require_detail({detail_type!r}) needs {name}")
    candidates = [d for d in token.authorization_details if d.get("type") == detail_type]
    if not candidates:
        raise _refuse(token, "type", f"the token grants no {detail_type} authorization details")
    first_miss: tuple[str, str] | None = None
    for detail in candidates:
        miss = matcher(detail, request)
        if miss is None:
            return detail
        # Prefer the reason from an entry that got further (e.g. the one listing the instrument).
        if first_miss is None or _rank(miss[0]) > _rank(first_miss[0]):
            first_miss = miss
    assert first_miss is not None
    raise _refuse(token, *first_miss)


_ORDER = ("type", "instrument", "asset", "action", "order_type", "destination", "leverage", "currency")


def _rank(field: str) -> int:
    return _ORDER.index(field) if field in _ORDER else len(_ORDER)
