"""RFC 9068 section 4 and RFC 6750 section 3 at a resource server protected by the SDK: real tokens from a
real Portcullis sign-in are accepted; each altered one (signed with the server's own key, so only the
altered part can be the reason) is refused with 401, a Bearer challenge and error="invalid_token"."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from conftest import ISSUER, PROFESSIONAL, Resource, sign_in
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import Harness


def server_sign(h: Harness, claims: dict[str, Any], **headers: Any) -> str:
    key = h.app.state.provider.keys.ring.active
    head = {"kid": key.kid, "typ": "at+jwt", **headers}
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers=head)


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_refused(reply: Any, status: int, error: str, scheme: str = "Bearer") -> str:
    assert reply.status_code == status, reply.text
    assert reply.json()["error"] == error
    challenge: str = reply.headers["www-authenticate"]
    assert challenge.startswith(scheme + " "), challenge
    assert f'error="{error}"' in challenge
    return challenge


async def test_a_real_token_is_accepted(server: Harness, rs: Resource) -> None:
    tokens = await sign_in(server, PROFESSIONAL)
    reply = await rs.http.get("/me", headers=bearer(tokens["access_token"]))
    assert reply.status_code == 200, reply.text
    assert reply.json()["sub"] == f"did:pkh:eip155:31337:{PROFESSIONAL.address}"


async def test_no_token_gets_both_challenges_without_an_error_code(rs: Resource) -> None:
    reply = await rs.http.get("/me")
    assert reply.status_code == 401
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith("Bearer") and "DPoP algs=" in challenge and "error=" not in challenge


async def test_a_malformed_authorization_header_is_invalid_request(rs: Resource) -> None:
    reply = await rs.http.get("/me", headers={"Authorization": "Bearer a b"})
    assert_refused(reply, 400, "invalid_request")


ALTERATIONS: dict[str, Any] = {
    "iss": lambda c: {**c, "iss": ISSUER + "/other"},
    "aud": lambda c: {**c, "aud": "https://another-venue.example"},
    "exp": lambda c: {**c, "exp": c["iat"] - 31},
    "nbf": lambda c: {**c, "nbf": c["iat"] + 120},
    "iat": lambda c: {**c, "iat": c["iat"] + 120},
    "client_id": lambda c: {k: v for k, v in c.items() if k != "client_id"},
    "sub": lambda c: {**c, "sub": "0x" + "ab" * 20},
    "jti": lambda c: {k: v for k, v in c.items() if k != "jti"},
    "valid_until": lambda c: {**c, "compliance": {**c["compliance"], "valid_until": c["iat"] - 1}},
}


@pytest.mark.parametrize("claim", list(ALTERATIONS))
async def test_each_claim_is_checked(server: Harness, rs: Resource, claim: str) -> None:
    tokens = await sign_in(server, PROFESSIONAL, scope="openid perps:trade")
    claims = claims_of(tokens["access_token"])
    assert (await rs.http.get("/me", headers=bearer(server_sign(server, claims)))).status_code == 200
    forged = server_sign(server, ALTERATIONS[claim](claims))
    assert_refused(await rs.http.get("/me", headers=bearer(forged)), 401, "invalid_token")


async def test_the_skew_is_30_seconds(server: Harness, rs: Resource) -> None:
    tokens = await sign_in(server, PROFESSIONAL)
    claims = claims_of(tokens["access_token"])
    just = server_sign(server, {**claims, "exp": claims["iat"] - 29})
    assert (await rs.http.get("/me", headers=bearer(just))).status_code == 200


HEADERS: dict[str, dict[str, Any]] = {
    "typ JWT": {"typ": "JWT"},
    "crit": {"crit": ["exp"], "exp": 1},
    "unknown kid": {"kid": "not-a-key-of-the-issuer"},
}


@pytest.mark.parametrize("case", list(HEADERS))
async def test_headers_are_checked(server: Harness, rs: Resource, case: str) -> None:
    tokens = await sign_in(server, PROFESSIONAL)
    forged = server_sign(server, claims_of(tokens["access_token"]), **HEADERS[case])
    assert_refused(await rs.http.get("/me", headers=bearer(forged)), 401, "invalid_token")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_alg_none_and_hs256_are_refused(server: Harness, rs: Resource) -> None:
    tokens = await sign_in(server, PROFESSIONAL)
    claims = claims_of(tokens["access_token"])
    kid = server.app.state.provider.keys.ring.active.kid
    head = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": kid}).encode())
    unsigned = f"{head}.{_b64(json.dumps(claims).encode())}."
    assert_refused(await rs.http.get("/me", headers=bearer(unsigned)), 401, "invalid_token")
    # HS256 keyed with the issuer's public JWK text: the classic algorithm-confusion forgery
    public = json.dumps((await server.client.get("/jwks")).json()["keys"][0])
    hs_head = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": kid}).encode())
    signing_input = f"{hs_head}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(public.encode(), signing_input.encode(), hashlib.sha256).digest()
    hs = f"{signing_input}.{_b64(mac)}"
    assert_refused(await rs.http.get("/me", headers=bearer(hs)), 401, "invalid_token")


async def test_an_embedded_or_remote_key_is_never_used(server: Harness, rs: Resource) -> None:
    """jwk / jku / x5u name an attacker's key: ignored, so the token still has to verify under the JWKS."""
    tokens = await sign_in(server, PROFESSIONAL)
    claims = claims_of(tokens["access_token"])
    attacker = ec.generate_private_key(ec.SECP256R1())
    numbers = attacker.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }
    for extra in ({"jwk": jwk}, {"jku": "https://evil.example/jwks"}, {"x5u": "https://evil.example/cert"}):
        forged = jwt.encode(claims, attacker, algorithm="ES256", headers={"typ": "at+jwt", **extra})
        assert_refused(await rs.http.get("/me", headers=bearer(forged)), 401, "invalid_token")
    # the real key with a jku header is fine: the header is not read
    real = server_sign(server, claims, jku="https://evil.example/jwks")
    assert (await rs.http.get("/me", headers=bearer(real))).status_code == 200


async def test_a_tampered_signature_is_refused(server: Harness, rs: Resource) -> None:
    tokens = await sign_in(server, PROFESSIONAL)
    head, body, sig = tokens["access_token"].split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert_refused(await rs.http.get("/me", headers=bearer(f"{head}.{body}.{flipped}")), 401, "invalid_token")


async def test_an_id_token_is_not_an_access_token(server: Harness, rs: Resource) -> None:
    tokens = await sign_in(server, PROFESSIONAL)
    assert_refused(await rs.http.get("/me", headers=bearer(tokens["id_token"])), 401, "invalid_token")


async def test_a_configured_resource_audience(server: Harness) -> None:
    """RFC 8707: a validator for https://perps.example accepts tokens whose aud names it, not the issuer's."""
    from conftest import validator_for

    v = validator_for(server, audience="https://perps.example")
    tokens = await sign_in(server, PROFESSIONAL)
    claims = claims_of(tokens["access_token"])
    with pytest.raises(Exception, match="not for this resource"):
        await v.validate_token(tokens["access_token"])
    token = await v.validate_token(server_sign(server, {**claims, "aud": [ISSUER, "https://perps.example"]}))
    assert token.subject == claims["sub"]
