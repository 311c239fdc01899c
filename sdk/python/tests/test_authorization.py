"""Scopes (RFC 6750 insufficient_scope), RFC 9396 details as Portcullis narrows them, RFC 9470 step-up, the
typed compliance claim, and RFC 7662 introspection (secret and private_key_jwt, short positive cache, no
negative cache, fail closed) on real tokens of the development chain's professional wallet."""

from __future__ import annotations

import httpx
import pytest
from conftest import MFA, PROFESSIONAL, RS_KEY, TRADE, Resource, sign_in, validator_for
from portcullis_resource import ClientAuth, InsufficientAuthorizationDetails, TemporarilyUnavailable
from portcullis_resource.authz import require_detail
from portcullis_resource.introspection import Introspector

from tests.conftest import Harness


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ORDER = {
    "instrument": "ETH-PERP",
    "action": "place_order",
    "leverage": 20,
    "notional": "1000000",
    "currency": "USDC",
}


async def test_scope_missing_is_403_naming_it(server: Harness, rs: Resource) -> None:
    token = (await sign_in(server, PROFESSIONAL, scope="openid"))["access_token"]
    reply = await rs.http.post("/trade", json=ORDER, headers=bearer(token))
    assert reply.status_code == 403 and reply.json()["error"] == "insufficient_scope"
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="insufficient_scope"' in challenge
    assert 'scope="perps:trade"' in challenge


async def test_the_narrowed_detail_is_enforced_field_by_field(server: Harness, rs: Resource) -> None:
    tokens = await sign_in(server, PROFESSIONAL, scope="openid perps:trade", authorization_details=[TRADE])
    token = tokens["access_token"]
    assert (await rs.http.post("/trade", json=ORDER, headers=bearer(token))).status_code == 200
    cases = {
        "leverage": {**ORDER, "leverage": 21},  # asked 50, the policy granted 20
        "notional": {**ORDER, "notional": "1000000.01"},
        "currency": {**ORDER, "currency": "USDT"},
        "instrument": {**ORDER, "instrument": "BTC-PERP"},
        "action": {**ORDER, "action": "close_position"},
    }
    for field, order in cases.items():
        reply = await rs.http.post("/trade", json=order, headers=bearer(token))
        assert reply.status_code == 403, (field, reply.text)
        assert reply.json()["error"] == "insufficient_authorization_details"
        assert reply.json()["error_description"].startswith(f"{field}:"), reply.json()
        assert 'error="insufficient_authorization_details"' in reply.headers["www-authenticate"]


async def test_no_detail_of_the_type(server: Harness) -> None:
    v = validator_for(server)
    token = await v.validate_token(
        (await sign_in(server, PROFESSIONAL, scope="openid perps:trade"))["access_token"]
    )
    with pytest.raises(InsufficientAuthorizationDetails) as refused:
        require_detail(token, "withdrawal", asset="USDC", amount="1", destination="eip155:1:0x" + "0" * 40)
    assert refused.value.field == "type"


async def test_step_up_is_401_with_acr_values_and_max_age(server: Harness, rs: Resource) -> None:
    token = (await sign_in(server, PROFESSIONAL, scope="openid"))["access_token"]
    reply = await rs.http.post("/withdraw", headers=bearer(token))
    assert reply.status_code == 401 and reply.json()["error"] == "insufficient_user_authentication"
    challenge = reply.headers["www-authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge
    assert f'acr_values="{MFA}"' in challenge and 'max_age="300"' in challenge


async def test_compliance_claim_is_typed(server: Harness) -> None:
    v = validator_for(server)
    tokens = await sign_in(server, PROFESSIONAL, scope="openid perps:trade")
    token = await v.validate_token(tokens["access_token"])
    assert token.compliance is not None
    assert token.compliance.investor_class == "professional" and token.compliance.source == "registry"
    assert isinstance(token.compliance.valid_until, int) and token.compliance.chain_id == 31337
    assert token.wallet_address == PROFESSIONAL.address and token.chain_id == 31337


@pytest.mark.parametrize(
    "auth",
    [
        ClientAuth("rs-secret", secret="the-resource-server-secret-0123456789abcdef"),
        ClientAuth("rs-key", private_key=RS_KEY.private, kid=RS_KEY.kid),
    ],
    ids=["client_secret_basic", "private_key_jwt"],
)
async def test_introspection_sees_revocation_within_its_cache_time(server: Harness, auth: ClientAuth) -> None:
    v = validator_for(server, introspection=auth)
    tokens = await sign_in(server, PROFESSIONAL)
    token = await v.validate_token(tokens["access_token"])
    assert (await v.confirm_live(token)).introspected
    revoked = await server.client.post(
        "/revoke", data={"token": tokens["refresh_token"], "client_id": "portcullis-demo"}
    )
    assert revoked.status_code == 200
    await v.confirm_live(token)  # the positive answer is cached for 5 s
    server.clock.advance(5)
    with pytest.raises(Exception) as refused:
        await v.confirm_live(token)
    assert getattr(refused.value, "error", None) == "invalid_token" and refused.value.status == 401  # type: ignore[attr-defined]


async def test_no_cache_asks_every_time(server: Harness) -> None:
    v = validator_for(server, introspection_cache_seconds=0)
    token = await v.validate_token((await sign_in(server, PROFESSIONAL))["access_token"])
    for _ in range(3):
        await v.confirm_live(token)
    assert v._introspector is not None and v._introspector.requests == 3


async def test_an_unreachable_server_fails_closed(server: Harness) -> None:
    """A real refused connection (nothing listens on 127.0.0.1:18699): 503, never the token accepted."""
    v = validator_for(server)
    token = await v.validate_token((await sign_in(server, PROFESSIONAL))["access_token"])
    async with httpx.AsyncClient(timeout=2) as http:
        v._introspector = Introspector(
            "http://127.0.0.1:18699/introspect", "x", ClientAuth("rs-secret", secret="s"), http, v.clock
        )
        with pytest.raises(TemporarilyUnavailable):
            await v.confirm_live(token)
        status, headers, body = v.render(TemporarilyUnavailable("down"))
        assert status == 503 and body["error"] == "temporarily_unavailable" and "Retry-After" in headers
