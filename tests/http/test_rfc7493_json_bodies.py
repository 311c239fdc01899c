"""JSON a client sends is I-JSON (RFC 7493) or a 400 ``invalid_request`` with the reason, on SQLite and
PostgreSQL: a lone UTF-16 surrogate anywhere (section 2.1), a member name twice at any depth (section 2.3),
NaN; and the second-factor endpoints refuse a subject that is not a did:pkh account with a 400, not a 500.
Each case here gave a 500 (or, for a repeated member, was accepted with the last value) before."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text
from tests.flow.client import Key, secret_client, write_clients

ISSUER = "http://127.0.0.1:8000"
CB = "https://broker.example/cb"
SECRET = "a-long-client-secret-for-the-broker-0123456789"
SERVICE_SECRET = "a-long-client-secret-for-the-backend-0123456789"
JSON_TYPE = {"content-type": "application/json"}


@pytest.fixture
async def h(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    service = {
        "client_id": "backend",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": SERVICE_SECRET,
    }
    clients = write_clients(
        tmp_path / "clients.json", [secret_client("broker", SECRET, [CB], "client_secret_post"), service]
    )
    settings = make_settings(tmp_path, database_url=database_url, clients_file=clients)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


def assert_invalid_request(reply: httpx.Response, reason: str) -> None:
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["error"] == "invalid_request", body
    assert reason in body["error_description"], body
    assert reply.headers["cache-control"] == "no-store"


async def post_raw(h: Harness, path: str, raw: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """``raw`` is sent as written: json.dumps cannot write a repeated member, and writes a lone surrogate
    only as its escape, which is what an attacker's client sends."""
    return await h.client.post(path, content=raw.encode(), headers={**JSON_TYPE, **(headers or {})})


async def signed_message(h: Harness, wallet: Any) -> dict[str, str]:
    offer = (await h.client.post("/siwe/nonce", json={})).json()
    message = siwe_text(offer, wallet.address, issued_at=h.clock.now())
    return {"message": message, "signature": sign(wallet, message)}


# -------------------------------------------------------------------------- lone surrogates (section 2.1)


async def test_lone_surrogate_in_client_id_at_verify(h: Harness) -> None:
    raw = '{"message": "m", "signature": "0x00", "client_id": "\\ud800"}'
    assert_invalid_request(await post_raw(h, "/siwe/verify", raw), "lone UTF-16 surrogate")


async def test_lone_surrogate_in_device_id_refused_before_the_nonce_is_spent(h: Harness, wallet: Any) -> None:
    proof = await signed_message(h, wallet)
    with_surrogate = json.dumps({**proof, "device_id": "phone-\udc00"})  # written as its \udc00 escape
    assert "\\udc00" in with_surrogate
    assert_invalid_request(await post_raw(h, "/siwe/verify", with_surrogate), "lone UTF-16 surrogate")
    # Refused while reading the body: the same signed message still signs in.
    ok = await h.client.post("/siwe/verify", json={**proof, "device_id": "phone-1"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["access_token"]


@pytest.mark.parametrize(
    "raw",
    [
        '{"client_id": "a\\udfff"}',  # a lone low surrogate
        '{"oidc_nonce": "\\udc00\\ud800"}',  # a pair in the wrong order is two lone ones
        '{"\\ud800": "member name"}',
        '{"oidc_nonce": ["ok", {"deep": ["\\ud83d"]}]}',
    ],
)
async def test_lone_surrogate_anywhere_in_the_document(h: Harness, raw: str) -> None:
    assert_invalid_request(await post_raw(h, "/siwe/nonce", raw), "lone UTF-16 surrogate")


async def test_a_surrogate_pair_is_a_character_and_accepted(h: Harness) -> None:
    reply = await post_raw(h, "/siwe/nonce", '{"oidc_nonce": "fox-\\ud83e\\udd8a"}')  # U+1F98A
    assert reply.status_code == 201, reply.text


# ------------------------------------------------------------------------ repeated members (section 2.3)


async def test_repeated_client_id_is_refused_not_last_wins(h: Harness) -> None:
    raw = '{"client_id": "portcullis-demo", "client_id": "broker"}'
    assert_invalid_request(await post_raw(h, "/siwe/nonce", raw), "member 'client_id' appears more than once")


async def test_repeated_member_at_depth_is_refused(h: Harness, wallet: Any) -> None:
    proof = await signed_message(h, wallet)
    head = json.dumps(proof)[:-1]
    raw = head + ', "second_factor": {"type": "totp", "code": "123456", "type": "recovery"}}'
    assert_invalid_request(await post_raw(h, "/siwe/verify", raw), "member 'type' appears more than once")


async def test_repeated_member_in_authorization_details_text(h: Harness) -> None:
    """A form field holding JSON goes through the same parser: RFC 9396 authorization_details at /par."""
    details = '[{"type": "withdrawal", "type": "derivatives_trade", "asset": "USDC", "max_amount": "1"}]'
    form = {
        "client_id": "broker",
        "client_secret": SECRET,
        "response_type": "code",
        "redirect_uri": CB,
        "scope": "openid",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
        "authorization_details": details,
    }
    reply = await h.client.post("/par", data=form)
    assert reply.status_code == 400, reply.text
    assert "member 'type' appears more than once" in reply.json()["error_description"]


# --------------------------------------------------------------------- second factors: the subject DID


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"subject": "not-a-did"}', "did:pkh:eip155"),
        ('{"subject": "did:pkh:eip155:0:0x0000000000000000000000000000000000000000"}', "did:pkh:eip155"),
        ('{"subject": "did:pkh:eip155:1:0x00"}', "did:pkh:eip155"),
        ('{"subject": ""}', "did:pkh:eip155"),
        ('{"subject": 7}', "subject must be a string"),
        ('{"subject": {"did": "x"}}', "subject must be a string"),
        ('{"subject": null}', "subject is required"),
        ("{}", "subject is required"),
        ("[]", "must be a JSON object"),
        ('"did:pkh:eip155:1:0x"', "must be a JSON object"),
        ('{"subject": NaN}', "not valid JSON"),
        ('{"subject": "did:pkh', "not valid JSON"),
        ('{"subject": "a", "subject": "b"}', "appears more than once"),
        ('{"subject": "\\ud800"}', "lone UTF-16 surrogate"),
    ],
)
async def test_webauthn_assertion_with_a_bad_subject_or_odd_json(h: Harness, raw: str, reason: str) -> None:
    assert_invalid_request(await post_raw(h, "/mfa/webauthn/assertion", raw), reason)


async def test_a_client_token_at_the_account_endpoints_is_a_400(h: Harness) -> None:
    """A client_credentials token's subject is the client, not a wallet: found by the fuzzer (500)."""
    token = await h.client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("backend", SERVICE_SECRET)
    )
    assert token.status_code == 200, token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    for path in ("/mfa/totp", "/mfa/webauthn/registration", "/mfa/recovery-codes"):
        assert_invalid_request(await post_raw(h, path, "{}", bearer), "did:pkh:eip155")


# ------------------------------------------------------------------------------ DPoP proofs (RFC 9449)


def dpop_with(claims: dict[str, Any]) -> str:
    key = Key()
    payload = json.dumps({"iat": int(time.time()), **claims}).encode()
    return jwt.api_jws.PyJWS().encode(
        payload, key.private, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": key.jwk}
    )


@pytest.mark.parametrize("path", ["/token", "/par"])
async def test_self_signed_dpop_proof_with_a_surrogate_jti(h: Harness, path: str) -> None:
    """Anyone can sign a DPoP proof: its jti is stored for replay detection, and a lone surrogate there
    failed the database write (found by the fuzzer: 500)."""
    proof = dpop_with({"jti": "\ud800", "htm": "POST", "htu": f"{ISSUER}{path}"})
    form = {"client_id": "broker", "client_secret": SECRET, "grant_type": "refresh_token"}
    form |= {"refresh_token": "r", "response_type": "code", "redirect_uri": CB, "scope": "openid"}
    reply = await h.client.post(path, data=form, headers={"DPoP": proof})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"] == "invalid_dpop_proof"
    assert "lone UTF-16 surrogate" in reply.json()["error_description"]


# --------------------------------------------------------------------------- the development chain RPC


async def test_dev_chain_rpc_with_a_surrogate_method_is_a_parse_error(
    tmp_path: Path, sqlite_url: str
) -> None:
    """JSON-RPC 2.0 section 5.1: a body that is not JSON we accept is error -32700 (HTTP 200), not a 500."""
    settings = make_settings(tmp_path, database_url=sqlite_url, dev_chain=True)
    async with running_app(settings, FakeClock()) as dev:
        raw = '{"jsonrpc": "2.0", "id": 1, "method": "\\ud800", "params": []}'
        reply = await post_raw(dev, "/dev/chain/rpc", raw)
        assert reply.status_code == 200, reply.text
        assert reply.json()["error"]["code"] == -32700


# ----------------------------------------------------------------------- RFC 7591 client registration

IAT = "initial-access-token-for-the-json-tests-0123456789"


async def test_registration_with_a_surrogate_client_name(tmp_path: Path, database_url: str) -> None:
    """Found by the fuzzer: the name reached the database and the audit entry (500)."""
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        registration_enabled=True,
        registration_initial_access_token=IAT,
    )
    async with running_app(settings, FakeClock()) as reg:
        bearer = {"Authorization": f"Bearer {IAT}"}
        raw = '{"redirect_uris": ["https://dapp.example/cb"], "client_name": "dApp \\ud800"}'
        assert_invalid_request(await post_raw(reg, "/register", raw, bearer), "lone UTF-16 surrogate")
        twice = '{"redirect_uris": ["https://a.example/cb"], "redirect_uris": ["https://b.example/cb"]}'
        assert_invalid_request(await post_raw(reg, "/register", twice, bearer), "appears more than once")
        ok = await reg.client.post(
            "/register", json={"redirect_uris": ["https://dapp.example/cb"]}, headers=bearer
        )
        assert ok.status_code == 201, ok.text
