"""POST /siwe/nonce and /siwe/verify: the happy path and every failure path (status, error code, no token)."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from eth_account import Account

from tests.conftest import Harness, sign, siwe_text


async def nonce(h: Harness, **body: Any) -> dict[str, Any]:
    reply = await h.client.post("/siwe/nonce", json=body or None)
    assert reply.status_code == 201, reply.text
    offer: dict[str, Any] = reply.json()
    return offer


async def verify(h: Harness, message: str, signature: str, **extra: Any) -> Any:
    return await h.client.post("/siwe/verify", json={"message": message, "signature": signature, **extra})


def assert_rejected(reply: Any, status: int, error: str) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["error"] == error
    assert body["error_description"]
    assert "access_token" not in body and "id_token" not in body and "refresh_token" not in body
    assert reply.headers["cache-control"] == "no-store"


async def test_nonce_offer_carries_what_the_server_accepts(harness: Harness) -> None:
    offer = await nonce(harness)
    assert offer["domain"] == "127.0.0.1:8000"
    assert offer["uri"] == "http://127.0.0.1:8000"
    assert offer["chain_id"] == 1
    assert len(offer["nonce"]) >= 17 and offer["nonce"].isalnum()  # >= 96 bits at 5.95 bits/char
    assert offer["expiration_time"] > offer["issued_at"]
    assert (await nonce(harness))["nonce"] != offer["nonce"]


async def test_sign_in_issues_oidc_tokens(harness: Harness, wallet: Any) -> None:
    offer = await nonce(harness, oidc_nonce="rp-nonce-123")
    message = siwe_text(offer, wallet.address, issued_at=harness.clock.now())
    reply = await verify(harness, message, sign(wallet, message), scope="openid")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "openid"
    assert body["expires_in"] == harness.settings.access_token_ttl_seconds
    jwks = (await harness.client.get("/jwks")).json()
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    access = jwt.decode(
        body["access_token"],
        key.key,
        algorithms=["ES256"],
        audience="http://127.0.0.1:8000",
        options={"verify_iat": False},
    )
    sub = f"did:pkh:eip155:1:{wallet.address}"
    assert access["sub"] == sub and access["iss"] == "http://127.0.0.1:8000"
    assert access["client_id"] == "portcullis-demo" and access["amr"] == ["siwe"]
    assert access["wallet_address"] == wallet.address and access["chain_id"] == 1
    assert access["scope"] == "openid" and access["jti"]
    assert access["exp"] - access["iat"] == harness.settings.access_token_ttl_seconds
    id_claims = jwt.decode(
        body["id_token"],
        key.key,
        algorithms=["ES256"],
        audience="portcullis-demo",
        options={"verify_iat": False},
    )
    assert id_claims["sub"] == sub and id_claims["nonce"] == "rp-nonce-123"
    assert id_claims["auth_time"] == access["auth_time"]


async def test_bad_signature_does_not_burn_the_nonce(harness: Harness, wallet: Any) -> None:
    offer = await nonce(harness)
    message = siwe_text(offer, wallet.address, issued_at=harness.clock.now())
    forged = sign(Account.create(), message)
    assert_rejected(await verify(harness, message, forged), 401, "invalid_signature")
    assert (await verify(harness, message, sign(wallet, message))).status_code == 200


async def test_nonce_is_single_use(harness: Harness, wallet: Any) -> None:
    offer = await nonce(harness)
    message = siwe_text(offer, wallet.address, issued_at=harness.clock.now())
    assert (await verify(harness, message, sign(wallet, message))).status_code == 200
    reply = await verify(harness, message, sign(wallet, message))
    assert_rejected(reply, 401, "nonce_mismatch")
    assert "already been used" in reply.json()["error_description"]


async def test_unknown_nonce(harness: Harness, wallet: Any) -> None:
    offer = {**(await nonce(harness)), "nonce": "NotIssuedByServer123"}
    message = siwe_text(offer, wallet.address, issued_at=harness.clock.now())
    reply = await verify(harness, message, sign(wallet, message))
    assert_rejected(reply, 401, "nonce_mismatch")
    assert "not issued" in reply.json()["error_description"]


async def test_expired_nonce(harness: Harness, wallet: Any) -> None:
    offer = await nonce(harness)
    harness.clock.advance(harness.settings.nonce_ttl_seconds + 1)
    # issued-at is fresh, so the nonce's own expiry is what refuses the sign-in
    message = siwe_text(offer, wallet.address, issued_at=harness.clock.now())
    reply = await verify(harness, message, sign(wallet, message))
    assert_rejected(reply, 401, "nonce_mismatch")
    assert "expired" in reply.json()["error_description"]


async def test_nonce_bound_to_its_client(tmp_path: Any, clock: Any, sqlite_url: str, wallet: Any) -> None:
    from tests.conftest import make_settings, running_app

    settings = make_settings(tmp_path, database_url=sqlite_url, clients=["dapp-a", "dapp-b"])
    async with running_app(settings, clock) as h:
        offer = await nonce(h, client_id="dapp-a")
        message = siwe_text(offer, wallet.address, issued_at=clock.now())
        reply = await verify(h, message, sign(wallet, message), client_id="dapp-b")
        assert_rejected(reply, 401, "nonce_mismatch")
        assert "another client" in reply.json()["error_description"]
        assert (await verify(h, message, sign(wallet, message), client_id="dapp-a")).status_code == 200


@pytest.mark.parametrize(
    ("override", "status", "error"),
    [
        ({"domain": "evil.example"}, 401, "domain_mismatch"),
        ({"uri": "https://evil.example"}, 401, "uri_mismatch"),
        ({"chain_id": 5}, 401, "chain_not_allowed"),
        ({"expiration_time": "2000-01-01T00:00:00Z"}, 401, "expired_message"),
        ({"not_before": "2999-01-01T00:00:00Z"}, 401, "not_yet_valid"),
        ({"nonce": "short"}, 400, "malformed_message"),
        ({"issued_at_text": "yesterday"}, 400, "malformed_message"),
    ],
)
async def test_field_checks(
    harness: Harness, wallet: Any, override: dict[str, Any], status: int, error: str
) -> None:
    offer = await nonce(harness)
    message = siwe_text(offer, wallet.address, issued_at=harness.clock.now(), **override)
    assert_rejected(await verify(harness, message, sign(wallet, message)), status, error)
    # the field failure happened before the nonce was touched: a correct message still signs in
    good = siwe_text(offer, wallet.address, issued_at=harness.clock.now())
    assert (await verify(harness, good, sign(wallet, good))).status_code == 200


async def test_issued_at_in_future_and_too_old(harness: Harness, wallet: Any) -> None:
    from datetime import timedelta

    offer = await nonce(harness)
    future = harness.clock.now() + timedelta(seconds=harness.settings.clock_skew_seconds + 5)
    message = siwe_text(offer, wallet.address, issued_at=future)
    assert_rejected(await verify(harness, message, sign(wallet, message)), 401, "issued_in_future")
    old = harness.clock.now() - timedelta(seconds=harness.settings.nonce_ttl_seconds + 5)
    message = siwe_text(offer, wallet.address, issued_at=old)
    assert_rejected(await verify(harness, message, sign(wallet, message)), 401, "message_too_old")


async def test_signature_failures(harness: Harness, wallet: Any) -> None:
    offer = await nonce(harness)
    message = siwe_text(offer, wallet.address, issued_at=harness.clock.now())
    good = sign(wallet, message)
    assert_rejected(await verify(harness, message, good[:-4]), 400, "malformed_signature")
    assert_rejected(await verify(harness, message, "0xzz" + good[4:]), 400, "malformed_signature")
    tampered = message.replace("Sign in to", "Sign in to!")
    assert_rejected(await verify(harness, tampered, good), 401, "invalid_signature")
    other = Account.create()
    claims_other = siwe_text(offer, other.address, issued_at=harness.clock.now())
    assert_rejected(await verify(harness, claims_other, good), 401, "invalid_signature")


async def test_request_shape_errors(harness: Harness, wallet: Any) -> None:
    c = harness.client
    assert_rejected(await c.post("/siwe/verify", content=b"not json"), 400, "invalid_request")
    assert_rejected(await c.post("/siwe/verify", json=["a"]), 400, "invalid_request")
    assert_rejected(await c.post("/siwe/verify", json={"signature": "0x00"}), 400, "invalid_request")
    assert_rejected(
        await c.post("/siwe/verify", json={"message": 5, "signature": "0x"}), 400, "invalid_request"
    )
    assert_rejected(await c.post("/siwe/verify", content=b"{" + b" " * 70000 + b"}"), 413, "invalid_request")
    huge = "a" * 20000
    assert_rejected(await verify(harness, huge, "0x00"), 400, "malformed_message")
    assert_rejected(await verify(harness, "x\r\ny", "0x00"), 400, "malformed_message")


async def test_unknown_client_and_scope(harness: Harness, wallet: Any) -> None:
    offer = await nonce(harness)
    message = siwe_text(offer, wallet.address, issued_at=harness.clock.now())
    sig = sign(wallet, message)
    assert_rejected(await verify(harness, message, sig, client_id="nobody"), 401, "invalid_client")
    assert_rejected(await verify(harness, message, sig, scope="openid admin"), 400, "invalid_scope")
    assert_rejected(await verify(harness, message, sig, scope='bad"scope'), 400, "invalid_scope")
    assert_rejected(
        await harness.client.post("/siwe/nonce", json={"client_id": "nobody"}), 401, "invalid_client"
    )
    # none of that consumed the nonce
    assert (await verify(harness, message, sig)).status_code == 200


async def test_lowercase_address_is_refused(harness: Harness, wallet: Any) -> None:
    offer = await nonce(harness)
    message = siwe_text(offer, wallet.address.lower(), issued_at=harness.clock.now())
    assert_rejected(await verify(harness, message, sign(wallet, message)), 400, "malformed_message")


async def test_scheme_must_match_the_issuer(harness: Harness, wallet: Any) -> None:
    offer = await nonce(harness)
    assert offer["scheme"] == "http"
    # EIP-4361: no scheme means https, which is not this (http) issuer's
    implicit = siwe_text({**offer, "scheme": "https"}, wallet.address, issued_at=harness.clock.now())
    assert not implicit.startswith("http")
    assert_rejected(await verify(harness, implicit, sign(wallet, implicit)), 401, "scheme_mismatch")
    explicit = "https://" + implicit
    assert_rejected(await verify(harness, explicit, sign(wallet, explicit)), 401, "scheme_mismatch")
    good = siwe_text(offer, wallet.address, issued_at=harness.clock.now())
    assert (await verify(harness, good, sign(wallet, good))).status_code == 200


async def test_deeply_nested_json_is_refused_not_fatal(harness: Harness) -> None:
    reply = await harness.client.post("/siwe/verify", content=b"[" * 60000 + b"]" * 60000)
    assert reply.status_code == 413  # over the body cap
    reply = await harness.client.post("/siwe/verify", content=b'{"a":' * 5000 + b"1" + b"}" * 5000)
    assert_rejected(reply, 400, "invalid_request")
    assert "nests deeper" in reply.json()["error_description"]
    ok_depth = b'{"message": "[[[[not nesting", "signature": "0x00"}'
    assert (await harness.client.post("/siwe/verify", content=ok_depth)).json()[
        "error"
    ] == "malformed_message"
