"""The sample venue API: every route names what it needs, the SDK checks it, the route does its work.

GET /positions        portfolio:read
POST /orders          perps:trade and a derivatives_trade detail covering the order
DELETE /orders/{id}   perps:trade and a derivatives_trade detail with cancel_order on the instrument
POST /withdrawals     vault:withdraw, wallet+mfa within 5 minutes, a withdrawal detail, introspection
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from portcullis_resource import Validator, require_detail
from portcullis_resource.starlette import Protected, install
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from perps_api.store import Store

MFA = "urn:portcullis:acr:wallet+mfa"
SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit")


@dataclass(frozen=True, slots=True)
class Config:
    database: Path
    public_origin: str | None = None  # the origin clients call (their DPoP htu), when behind a proxy
    # Browser pages allowed to call the API (CORS), e.g. the demo dApp at the issuer's /demo/. None: none.
    allowed_origins: tuple[str, ...] = ()


class BadRequest(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, choices: tuple[str, ...] | None = None) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= 100 or (choices and value not in choices):
        allowed = f" (one of {', '.join(choices)})" if choices else ""
        raise BadRequest(f"{name} must be a string{allowed}")
    return value


def _amount(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    try:
        number = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number <= 0:
        raise BadRequest(f'{name} must be a positive decimal string such as "1000.50"')
    return str(value)


def _leverage(body: dict[str, Any]) -> int:
    value = body.get("leverage")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise BadRequest("leverage must be an integer between 1 and 1000")
    return value


class Venue:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.public_origin = config.public_origin

    async def positions(self, request: Request) -> Response:
        token = await Protected(["portfolio:read"], public_origin=self.public_origin)(request)
        return JSONResponse({"positions": self.store.positions(token.subject)})

    async def place_order(self, request: Request) -> Response:
        token = await Protected(["perps:trade"], public_origin=self.public_origin)(request)
        body = await _body(request)
        order = {
            "instrument": _text(body, "instrument"),
            "side": _text(body, "side", SIDES),
            "order_type": _text(body, "order_type", ORDER_TYPES),
            "leverage": _leverage(body),
            "notional": _amount(body, "notional"),
            "currency": _text(body, "currency"),
        }
        require_detail(
            token,
            "derivatives_trade",
            instrument=order["instrument"],
            action="place_order",
            order_type=order["order_type"],
            leverage=order["leverage"],
            notional=order["notional"],
            currency=order["currency"],
        )
        placed = self.store.place_order(token.subject, order)
        return JSONResponse({k: v for k, v in placed.items() if k != "subject"}, status_code=201)

    async def cancel_order(self, request: Request) -> Response:
        token = await Protected(["perps:trade"], public_origin=self.public_origin)(request)
        order = self.store.order(token.subject, request.path_params["order_id"])
        if order is None:
            return JSONResponse({"error": "not_found", "error_description": "no such order"}, status_code=404)
        require_detail(token, "derivatives_trade", instrument=order["instrument"], action="cancel_order")
        if not self.store.cancel_order(token.subject, order["id"]):
            return JSONResponse({"error": "conflict", "error_description": "the order is not open"}, 409)
        return JSONResponse({"id": order["id"], "status": "cancelled"})

    async def withdraw(self, request: Request) -> Response:
        guard = Protected(
            ["vault:withdraw"],
            acr_values=[MFA],
            max_age=300,
            introspect=True,
            public_origin=self.public_origin,
        )
        token = await guard(request)
        body = await _body(request)
        asset, amount = _text(body, "asset"), _amount(body, "amount")
        destination = _text(body, "destination")
        require_detail(token, "withdrawal", asset=asset, amount=amount, destination=destination)
        done = self.store.withdraw(token.subject, asset, amount, destination)
        return JSONResponse(done, status_code=201)


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    return JSONResponse({"error": "invalid_request", "error_description": exc.description}, status_code=400)


def create_app(config: Config, validator: Validator) -> Starlette:
    """The API on its own SQLite file; ``validator`` is a portcullis_resource.Validator for the issuer."""
    store = Store(config.database)
    venue = Venue(store, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            store.close()

    app = Starlette(
        routes=[
            Route("/positions", venue.positions, methods=["GET"]),
            Route("/orders", venue.place_order, methods=["POST"]),
            Route("/orders/{order_id}", venue.cancel_order, methods=["DELETE"]),
            Route("/withdrawals", venue.withdraw, methods=["POST"]),
        ],
        exception_handlers={BadRequest: _bad_request},
        lifespan=lifespan,
    )
    install(app, validator)
    if config.allowed_origins:
        # A page on another origin sends the token and its DPoP proof, and must read the RFC 6750 / 9449
        # challenges (WWW-Authenticate, DPoP-Nonce) to step up or retry; no cookies, so no credentials.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.allowed_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type", "dpop"],
            expose_headers=["WWW-Authenticate", "DPoP-Nonce"],
            max_age=600,
        )
    app.state.store = store
    return app
