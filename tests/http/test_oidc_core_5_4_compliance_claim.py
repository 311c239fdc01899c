"""OpenID Connect Core 1.0 section 5.4 for the compliance claim, and GDPR art. 5(1)(c) data minimisation:
the ID token and userinfo carry the claim only when the granted scopes include ``compliance`` (the policy's
scope whose ``claims`` name it); otherwise the access token keeps the decision's provenance and only the
facts the granted scopes list in ``access_token_compliance``. The consent screen lists exactly those facts.

On the embedded development chain (the ComplianceRegistry deployed, wallet #2 seeded as a German
professional with derivatives appropriateness), through /siwe/verify, the hosted page's code flow, /token
refresh, /userinfo and /introspect, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from eth_account import Account

from app.chain.devchain import DEV_ACCOUNTS
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text
from tests.flow.client import Authorized, Flow, authorize, secret_client, write_clients

ISSUER = "http://127.0.0.1:8000"
CB = "https://broker.example/cb"
SECRET = "a-long-client-secret-for-the-broker-0123456789"
PROFESSIONAL = Account.from_key(DEV_ACCOUNTS[2].private_key)
DEV_CHAIN = 31337
PROVENANCE = {"source", "chain_id", "block"}
# what perps:trade's access_token_compliance lists in policy/default.toml
TRADING_FACTS = {"investor_class", "valid_until"}
WHOLE = {"residence", "investor_class", "kyc_level", "flags", "valid_until"} | PROVENANCE


@pytest.fixture
async def h(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    broker = secret_client("broker", SECRET, [CB], "client_secret_post")
    clients = write_clients(tmp_path / "clients.json", [broker])
    settings = make_settings(tmp_path, database_url=database_url, dev_chain=True, clients_file=clients)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


def decoded(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def direct_sign_in(h: Harness, scope: str) -> dict[str, Any]:
    offer = (await h.client.post("/siwe/nonce")).json()
    message = siwe_text(offer, PROFESSIONAL.address, issued_at=h.clock.now())
    reply = await h.client.post(
        "/siwe/verify", json={"message": message, "signature": sign(PROFESSIONAL, message), "scope": scope}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["scope"] == scope
    body: dict[str, Any] = reply.json()
    return body


async def userinfo(h: Harness, access_token: str) -> dict[str, Any]:
    reply = await h.client.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def flow(h: Harness) -> Flow:
    return Flow(h.client, ISSUER, "broker", CB, auth={"client_secret": SECRET})


async def code_flow(h: Harness, scope: str) -> tuple[Authorized, dict[str, Any]]:
    got = await authorize(flow(h), PROFESSIONAL, scope=scope)
    form = {"grant_type": "authorization_code", "code": got.code, "code_verifier": got.verifier}
    reply = await flow(h).token({**form, "redirect_uri": CB})
    assert reply.status_code == 200, reply.text
    assert reply.json()["scope"] == scope
    body: dict[str, Any] = reply.json()
    return got, body


def assert_minimal(tokens: dict[str, Any]) -> None:
    """perps:trade without the compliance scope: nothing for the client, the trading facts for the RS."""
    assert "compliance" not in decoded(tokens["id_token"])
    carried = decoded(tokens["access_token"])["compliance"]
    assert set(carried) == PROVENANCE | TRADING_FACTS, carried
    assert carried["source"] == "registry" and carried["chain_id"] == DEV_CHAIN
    assert carried["investor_class"] == "professional" and carried["valid_until"] > 0


def assert_whole(tokens: dict[str, Any]) -> None:
    claim = decoded(tokens["id_token"])["compliance"]
    assert set(claim) == WHOLE, claim
    assert claim["residence"] == "DE" and claim["kyc_level"] == 2
    assert claim["flags"] == ["appropriateness_derivatives"]
    assert decoded(tokens["access_token"])["compliance"] == claim


async def test_siwe_verify_for_trading_carries_only_what_the_resource_server_needs(h: Harness) -> None:
    tokens = await direct_sign_in(h, "openid perps:trade")
    assert_minimal(tokens)
    assert "compliance" not in await userinfo(h, tokens["access_token"])


async def test_siwe_verify_with_the_compliance_scope_carries_the_whole_claim(h: Harness) -> None:
    tokens = await direct_sign_in(h, "openid perps:trade compliance")
    assert_whole(tokens)
    assert (await userinfo(h, tokens["access_token"]))["compliance"] == decoded(tokens["id_token"])[
        "compliance"
    ]


async def test_openid_alone_carries_no_fact_about_the_holder(h: Harness) -> None:
    tokens = await direct_sign_in(h, "openid")
    assert "compliance" not in decoded(tokens["id_token"])
    assert set(decoded(tokens["access_token"])["compliance"]) == PROVENANCE


async def test_code_flow_for_trading_is_minimal_and_the_consent_screen_says_so(h: Harness) -> None:
    got, tokens = await code_flow(h, "openid perps:trade")
    assert_minimal(tokens)
    assert "compliance" not in await userinfo(h, tokens["access_token"])
    # before the signature the page names the facts; after it, consent gives the values the tokens hold
    assert got.view["compliance"] == [
        "Your investor class (retail, professional or eligible counterparty)",
        "When your compliance record expires",
    ]
    shown = got.consent["compliance"]
    assert shown[0] == "Your investor class (retail, professional or eligible counterparty): professional"
    assert shown[1].startswith("When your compliance record expires: ")
    assert shown[2].startswith("That you have a record in the compliance registry (chain 31337, block ")
    assert len(shown) == 3 and not any("residence" in line or "KYC" in line for line in shown)


async def test_code_flow_with_the_compliance_scope_lists_every_fact(h: Harness) -> None:
    got, tokens = await code_flow(h, "openid compliance")
    assert_whole(tokens)
    assert (await userinfo(h, tokens["access_token"]))["compliance"]["residence"] == "DE"
    shown = got.consent["compliance"]
    assert "Your country of residence: DE" in shown
    assert "Your identity check (KYC) level: 2" in shown
    assert any(line.endswith(": appropriateness derivatives") for line in shown), shown
    assert len(shown) == 6


async def test_refresh_and_introspection_keep_to_the_granted_scopes(h: Harness) -> None:
    _, tokens = await code_flow(h, "openid perps:trade compliance")
    auth = {"client_id": "broker", "client_secret": SECRET}
    narrowed = await h.client.post(
        "/token",
        data={
            **auth,
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "openid perps:trade",
        },
    )
    assert narrowed.status_code == 200, narrowed.text
    assert_minimal(narrowed.json())
    seen = await h.client.post("/introspect", data={**auth, "token": narrowed.json()["access_token"]})
    assert seen.status_code == 200 and seen.json()["active"] is True
    assert set(seen.json()["compliance"]) == PROVENANCE | TRADING_FACTS


async def test_discovery_lists_the_scope_and_the_claim(h: Harness) -> None:
    meta = (await h.client.get("/.well-known/openid-configuration")).json()
    assert "compliance" in meta["scopes_supported"] and "compliance" in meta["claims_supported"]
