"""POST /delegations: the signed EIP-4361 + EIP-5573 message is checked strictly and judged by the policy;
every refusal is a typed 4xx and a ``delegation.refused`` entry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from app.chain.devchain import DEV_ACCOUNTS
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign
from tests.oauth.bots import TRADE, Bot, capabilities, delegate, delegation_message, recap_uri

PROFESSIONAL, RETAIL = (Account.from_key(DEV_ACCOUNTS[i].private_key) for i in (2, 3))


@pytest.fixture
async def h(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Harness]:
    settings = make_settings(tmp_path, database_url=sqlite_url, dev_chain=True)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


async def post(h: Harness, account: Any, text: str) -> Any:
    return await h.client.post("/delegations", json={"message": text, "signature": sign(account, text)})


async def test_a_request_beyond_the_policy_is_refused_with_the_reason(h: Harness) -> None:
    refused = await delegate(h, RETAIL, Bot())  # retail without an appropriateness test: no perps
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied", refused.text
    assert "appropriateness" in refused.json()["error_description"]


async def test_part_of_a_request_is_narrowed_away_with_the_reason(h: Harness) -> None:
    created = await delegate(h, RETAIL, Bot(), scopes=["perps:trade", "portfolio:read"], details=[])
    assert created.status_code == 201, created.text
    granted = created.json()["granted"]
    assert granted["scope"] == "portfolio:read"
    assert [r["item"] for r in granted["refused"]] == ["perps:trade"]
    assert "appropriateness" in granted["refused"][0]["reason"]


async def test_tampered_recap_is_refused(h: Harness) -> None:
    bot = Bot()
    text = await delegation_message(h, PROFESSIONAL.address, bot)
    signature = sign(PROFESSIONAL, text)
    head = text.rsplit("- urn:recap:", 1)[0]
    # More scopes: the statement no longer says what the ReCap asks (checked before the signature).
    wider = head + "- " + recap_uri(capabilities(["perps:trade", "options:trade"], [TRADE]))
    reply = await h.client.post("/delegations", json={"message": wider, "signature": signature})
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_recap", reply.text
    # A higher cap only (nota bene, which the statement does not show): the signature no longer fits.
    higher = head + "- " + recap_uri(capabilities(["perps:trade"], [{**TRADE, "max_leverage": 20}]))
    reply = await h.client.post("/delegations", json={"message": higher, "signature": signature})
    assert reply.status_code == 401 and reply.json()["error"] == "invalid_signature", reply.text


async def test_recap_that_the_statement_does_not_say_is_refused(h: Harness) -> None:
    bot = Bot()
    text = await delegation_message(
        h, PROFESSIONAL.address, bot, statement_att=capabilities(["portfolio:read"], [])
    )
    reply = await post(h, PROFESSIONAL, text)
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_recap", reply.text


async def test_unknown_capabilities_are_refused(h: Harness) -> None:
    bot = Bot()
    text = await delegation_message(h, PROFESSIONAL.address, bot, scopes=["moon:launch"], details=[])
    reply = await post(h, PROFESSIONAL, text)
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_recap"
    assert "moon:launch" in reply.json()["error_description"]


async def test_longer_than_the_policy_maximum_is_refused(h: Harness) -> None:
    text = await delegation_message(h, PROFESSIONAL.address, Bot(), lasts=timedelta(days=31))
    reply = await post(h, PROFESSIONAL, text)
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_delegation"
    assert "30 days" in reply.json()["error_description"]


async def test_the_uri_must_name_a_key(h: Harness) -> None:
    bot = Bot()
    text = await delegation_message(h, PROFESSIONAL.address, bot)
    text = text.replace(f"urn:ietf:params:oauth:jwk-thumbprint:sha-256:{bot.jkt}", "https://bot.example")
    reply = await post(h, PROFESSIONAL, text)
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_delegate"


async def test_one_message_makes_one_delegation(h: Harness) -> None:
    text = await delegation_message(h, PROFESSIONAL.address, Bot())
    assert (await post(h, PROFESSIONAL, text)).status_code == 201
    again = await post(h, PROFESSIONAL, text)
    assert again.status_code == 409 and again.json()["error"] == "invalid_delegation"


async def test_an_old_message_is_refused(h: Harness) -> None:
    text = await delegation_message(h, PROFESSIONAL.address, Bot())
    h.clock.advance(600)  # past the nonce lifetime a signed message may be presented in
    reply = await post(h, PROFESSIONAL, text)
    assert reply.status_code == 401 and reply.json()["error"] == "message_too_old", reply.text


@pytest.mark.parametrize("body", [b"[]", b"{}", b'{"message": 1, "signature": "0x"}', b"{"])
async def test_bad_bodies_are_400(h: Harness, body: bytes) -> None:
    reply = await h.client.post("/delegations", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_request", reply.text
