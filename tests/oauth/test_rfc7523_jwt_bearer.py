"""RFC 7523 section 2.1 JWT bearer grant under a delegation (docs/DELEGATION.md), on the embedded
development chain's professional wallet with real signatures (eth-account wallet, P-256 and Ed25519 bots):
a DPoP-bound token with ``act``, then every refusal: another key, a replayed jti, an expired or revoked
delegation, a missing proof, a wrong audience, a policy change narrowing at the next token."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from eth_account import Account
from sqlalchemy import select

from app.chain.devchain import DEV_ACCOUNTS
from tests.conftest import FakeClock, Harness, make_settings, running_app
from tests.oauth.bots import TRADE, Bot, bot_token, delegate

PROFESSIONAL = Account.from_key(DEV_ACCOUNTS[2].private_key)
SECRET = "introspector-secret-0123456789abcdef0123"


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.fixture
async def h(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Harness]:
    clients = tmp_path / "clients.json"
    clients.write_text(
        json.dumps(
            [
                {
                    "client_id": "venue",
                    "grant_types": ["client_credentials"],
                    "response_types": [],
                    "token_endpoint_auth_method": "client_secret_basic",
                    "client_secret": SECRET,
                }
            ]
        )
    )
    settings = make_settings(tmp_path, database_url=sqlite_url, dev_chain=True, clients_file=clients)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


async def introspect(h: Harness, token: str) -> dict[str, Any]:
    reply = await h.client.post("/introspect", data={"token": token}, headers=basic("venue", SECRET))
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def audit_types(h: Harness) -> list[tuple[str, str | None, dict[str, Any]]]:
    from app.storage.models import AuditEntry

    provider = h.app.state.provider
    async with provider.store.engine.connect() as conn:
        rows = (await conn.execute(select(AuditEntry.type, AuditEntry.reason, AuditEntry.data))).all()
    return [(t, r, json.loads(d)) for t, r, d in rows if t.startswith("delegation.")]


@pytest.mark.parametrize("kind", ["P-256", "Ed25519"])
async def test_bot_gets_a_dpop_bound_token_acting_for_the_wallet(h: Harness, kind: str) -> None:
    bot = Bot(kind)
    created = await delegate(h, PROFESSIONAL, bot)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["delegate_jkt"] == bot.jkt and body["state"] == "active"
    assert body["granted"]["scope"] == "perps:trade" and body["granted"]["refused"] == []

    reply = await bot_token(h, bot, body["delegation_id"])
    assert reply.status_code == 200, reply.text
    tokens = reply.json()
    assert tokens["token_type"] == "DPoP" and "refresh_token" not in tokens and "id_token" not in tokens
    assert tokens["expires_in"] <= 300
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["sub"] == f"did:pkh:eip155:31337:{PROFESSIONAL.address}"
    assert claims["act"] == {"sub": f"urn:ietf:params:oauth:jwk-thumbprint:sha-256:{bot.jkt}"}
    assert claims["cnf"] == {"jkt": bot.jkt} and claims["delegation_id"] == body["delegation_id"]
    assert claims["scope"] == "perps:trade"
    [detail] = claims["authorization_details"]
    assert detail["max_leverage"] == 5 and detail["instruments"] == ["ETH-PERP"]

    state = await introspect(h, tokens["access_token"])
    assert state["active"] is True and state["act"] == claims["act"]
    entries = await audit_types(h)
    assert [t for t, _, _ in entries] == ["delegation.created", "delegation.used"]
    assert all(d["delegate_jkt"] == bot.jkt for _, _, d in entries)


async def test_refusals_name_the_check(h: Harness) -> None:
    bot, other = Bot(), Bot("Ed25519")
    delegation_id = (await delegate(h, PROFESSIONAL, bot)).json()["delegation_id"]
    now = h.clock.now()
    issuer = h.settings.issuer

    by_other = await bot_token(h, other, delegation_id)  # another key's assertion (and proof)
    assert by_other.status_code == 400 and by_other.json()["error"] == "invalid_grant", by_other.text
    proof_by_other = await bot_token(h, bot, delegation_id, proof_by=other)
    assert proof_by_other.status_code == 400 and proof_by_other.json()["error"] == "invalid_dpop_proof"
    no_proof = await h.client.post(
        "/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": bot.assertion(issuer, delegation_id, now),
        },
    )
    assert no_proof.status_code == 400 and no_proof.json()["error"] == "invalid_dpop_proof"
    wrong_aud = await bot_token(
        h, bot, delegation_id, assertion=bot.assertion(issuer, delegation_id, now, aud="https://x")
    )
    assert wrong_aud.status_code == 400 and "aud" in wrong_aud.json()["error_description"]
    too_long = bot.assertion(issuer, delegation_id, now, exp=int(now.timestamp()) + 3600)
    assert (await bot_token(h, bot, delegation_id, assertion=too_long)).status_code == 400
    forged = bot.assertion(issuer, delegation_id, now)
    head, payload, sig = forged.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["sub"] = "someone-else"
    tampered = ".".join(
        [head, base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode(), sig]
    )
    assert (await bot_token(h, bot, delegation_id, assertion=tampered)).json()["error"] == "invalid_grant"
    garbage = await bot_token(h, bot, delegation_id, assertion="not-a-jwt")
    assert garbage.status_code == 400 and garbage.json()["error"] == "invalid_grant"

    once = bot.assertion(issuer, delegation_id, now)
    assert (await bot_token(h, bot, delegation_id, assertion=once)).status_code == 200
    replay = await bot_token(h, bot, delegation_id, assertion=once)
    assert replay.status_code == 400 and "jti" in replay.json()["error_description"]

    checks = [d["check"] for t, _, d in await audit_types(h) if t == "delegation.refused"]
    assert checks == [
        "delegation",
        "dpop",
        "dpop",
        "assertion",
        "assertion",
        "assertion",
        "assertion",
        "replay",
    ]


async def test_expired_delegation_is_refused(h: Harness) -> None:
    bot = Bot()
    delegation_id = (await delegate(h, PROFESSIONAL, bot, lasts=timedelta(minutes=10))).json()[
        "delegation_id"
    ]
    assert (await bot_token(h, bot, delegation_id)).status_code == 200
    h.clock.advance(601)
    expired = await bot_token(h, bot, delegation_id)
    assert expired.status_code == 400 and "expired" in expired.json()["error_description"], expired.text


async def test_revoked_delegation_kills_its_tokens_at_once(h: Harness) -> None:
    from tests.http.test_policy_signin import sign_in

    bot = Bot()
    delegation_id = (await delegate(h, PROFESSIONAL, bot)).json()["delegation_id"]
    token = (await bot_token(h, bot, delegation_id)).json()["access_token"]
    wallet = (await sign_in(h, PROFESSIONAL)).json()["access_token"]
    auth = {"Authorization": f"Bearer {wallet}"}

    listed = await h.client.get("/delegations", headers=auth)
    assert [d["delegation_id"] for d in listed.json()["delegations"]] == [delegation_id]
    as_bot = await h.client.get(
        "/delegations",
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": bot.proof("GET", f"{h.settings.issuer}/delegations", h.clock.now(), token),
        },
    )
    assert as_bot.status_code == 403 and as_bot.json()["error"] == "access_denied"

    revoked = await h.client.delete(f"/delegations/{delegation_id}", headers=auth)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert (await introspect(h, token)) == {"active": False}
    after = await bot_token(h, bot, delegation_id)
    assert after.status_code == 400 and "revoked" in after.json()["error_description"]
    again = await h.client.delete(f"/delegations/{delegation_id}", headers=auth)
    assert again.status_code == 409
    unknown = await h.client.delete("/delegations/nope", headers=auth)
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    assert (await h.client.get("/delegations")).status_code == 401
    revocations = [(r, d) for t, r, d in await audit_types(h) if t == "delegation.revoked"]
    assert revocations == [("revoked_by_user", {"delegation_id": delegation_id, "delegate_jkt": bot.jkt})]


async def test_a_policy_change_narrows_at_the_next_token(h: Harness) -> None:
    from app.policy.model import load_policy

    bot = Bot()
    delegation_id = (await delegate(h, PROFESSIONAL, bot, scopes=["perps:trade", "portfolio:read"])).json()[
        "delegation_id"
    ]
    first = jwt.decode(
        (await bot_token(h, bot, delegation_id)).json()["access_token"], options={"verify_signature": False}
    )
    assert first["scope"] == "perps:trade portfolio:read"
    provider = h.app.state.provider
    # The policy now lets only eligible counterparties trade perps (the first investor_classes line of
    # [scopes."perps:trade"]): the professional's live delegation narrows at its next token.
    source = Path("policy/default.toml").read_text()
    perps = source.index('[scopes."perps:trade"]')
    old = 'investor_classes = ["retail", "professional", "eligible_counterparty"]'
    at = source.index(old, perps)
    text = source[:at] + 'investor_classes = ["eligible_counterparty"]' + source[at + len(old) :]
    changed = Path(h.settings.data_dir) / "policy.toml"
    changed.write_text(text)
    provider.trading_policy = load_policy(changed)
    narrowed = await bot_token(h, bot, delegation_id)
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "portfolio:read" and "authorization_details" not in narrowed.json()
    used = [d for t, _, d in await audit_types(h) if t == "delegation.used"][-1]
    assert {r["item"] for r in used["refused"]} >= {"perps:trade"}


async def test_detail_is_kept_within_the_policys_cap(h: Harness) -> None:
    bot = Bot()
    big = {**TRADE, "max_leverage": 50}
    created = await delegate(h, PROFESSIONAL, bot, details=[big])
    assert created.status_code == 201, created.text
    [detail] = created.json()["granted"]["authorization_details"]
    assert detail["max_leverage"] == 20  # the professional class's cap, not the 50 signed for
    assert created.json()["granted"]["narrowed"]


async def test_each_delegate_key_has_its_own_rate_limit(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url, dev_chain=True, rate_limits=True)
    async with running_app(settings, FakeClock()) as limited:
        bot, other = Bot(), Bot()
        first = (await delegate(limited, PROFESSIONAL, bot)).json()["delegation_id"]
        second = (await delegate(limited, PROFESSIONAL, other)).json()["delegation_id"]
        answers = [(await bot_token(limited, bot, first)).status_code for _ in range(21)]
        assert answers[:20] == [200] * 20 and answers[20] == 429  # bot:client, burst 20
        assert (await bot_token(limited, other, second)).status_code == 200  # another key's budget
        checks = [d["check"] for t, _, d in await audit_types(limited) if t == "delegation.refused"]
        assert checks == ["rate_limit"]
