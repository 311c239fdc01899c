"""A real Portcullis app in-process (the embedded development chain, its seeded wallets) and a small
resource server protected by the SDK, each reached through its own httpx client.

Tokens come from real sign-ins at /siwe/verify; DPoP-bound ones from a refresh with a real proof.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from portcullis_resource import Validator, require_detail
from portcullis_resource.introspection import ClientAuth
from portcullis_resource.starlette import Protected, install
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.chain.devchain import DEV_ACCOUNTS
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text
from tests.flow.client import Key, b64url, dpop_proof

ISSUER = "http://127.0.0.1:8000"
RS = "https://rs.example"
PROFESSIONAL = Account.from_key(DEV_ACCOUNTS[2].private_key)
RS_SECRET = "the-resource-server-secret-0123456789abcdef"
RS_KEY = Key()
TRADE = {
    "type": "derivatives_trade",
    "actions": ["place_order", "cancel_order"],
    "instruments": ["ETH-PERP"],
    "max_leverage": 50,
    "max_notional": {"amount": "5000000", "currency": "USDC"},
}


def resource_clients() -> list[dict[str, Any]]:
    """The resource server registered at Portcullis for introspection: once by secret, once by key."""
    common = {"grant_types": ["client_credentials"], "response_types": []}
    return [
        {
            "client_id": "rs-secret",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret": RS_SECRET,
            **common,
        },
        {
            "client_id": "rs-key",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [RS_KEY.public_jwk]},
            **common,
        },
    ]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Harness]:
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'portcullis.db'}"
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps(resource_clients()))
    settings = make_settings(tmp_path, database_url=sqlite_url, dev_chain=True, clients_file=clients)
    async with running_app(settings, FakeClock()) as h:
        yield h


def clock_of(h: Harness) -> Any:
    return lambda: h.clock.now().timestamp()


def validator_for(h: Harness, **kw: Any) -> Validator:
    kw.setdefault("introspection", ClientAuth("rs-secret", secret=RS_SECRET))
    return Validator(ISSUER, http=h.client, clock=clock_of(h), **kw)


async def me(request: Request) -> JSONResponse:
    token = await Protected(["openid"])(request)
    return JSONResponse({"sub": token.subject, "scope": sorted(token.scopes)})


async def trade(request: Request) -> JSONResponse:
    token = await Protected(["perps:trade"])(request)
    order = await request.json()
    require_detail(token, "derivatives_trade", **order)
    return JSONResponse({"accepted": True})


async def withdraw(request: Request) -> JSONResponse:
    guard = Protected(["vault:withdraw"], acr_values=[MFA], max_age=300, introspect=True)
    await guard(request)
    return JSONResponse({"accepted": True})


MFA = "urn:portcullis:acr:wallet+mfa"


def resource_app(validator: Validator) -> Starlette:
    app = Starlette(
        routes=[
            Route("/me", me, methods=["GET", "POST"]),
            Route("/trade", trade, methods=["POST"]),
            Route("/withdraw", withdraw, methods=["POST"]),
        ]
    )
    install(app, validator)
    return app


@dataclass
class Resource:
    http: httpx.AsyncClient
    validator: Validator


@pytest.fixture
async def rs(server: Harness) -> AsyncIterator[Resource]:
    validator = validator_for(server)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=resource_app(validator)), base_url=RS
    ) as http:
        yield Resource(http, validator)


async def sign_in(h: Harness, account: Any, **extra: Any) -> dict[str, Any]:
    offer = (await h.client.post("/siwe/nonce")).json()
    message = siwe_text(offer, account.address, issued_at=h.clock.now())
    reply = await h.client.post(
        "/siwe/verify", json={"message": message, "signature": sign(account, message), **extra}
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def dpop_bound(h: Harness, tokens: dict[str, Any], key: Key) -> dict[str, Any]:
    """A refresh with a DPoP proof: the new access token is bound to ``key`` (cnf.jkt)."""
    proof = dpop_proof(key, "POST", f"{ISSUER}/token", iat=int(h.clock.now().timestamp()))
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": "portcullis-demo",
    }
    reply = await h.client.post("/token", data=form, headers={"DPoP": proof})
    assert reply.status_code == 200, reply.text
    assert reply.json()["token_type"] == "DPoP"
    body: dict[str, Any] = reply.json()
    return body


def proof_for(h: Harness, key: Key, method: str, url: str, token: str, **over: Any) -> str:
    over.setdefault("iat", int(h.clock.now().timestamp()))
    return dpop_proof(key, method, url, access_token=token, **over)


def ath(token: str) -> str:
    return b64url(hashlib.sha256(token.encode()).digest())


def jti() -> str:
    return secrets.token_urlsafe(12)


def now() -> int:
    return int(time.time())
