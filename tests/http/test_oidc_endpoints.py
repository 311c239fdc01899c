"""Discovery (OIDC Discovery 1.0, RFC 8414), JWKS, UserInfo, health and readiness."""

from __future__ import annotations

from typing import Any

import jwt

from tests.conftest import Harness, make_settings, running_app
from tests.http.test_rfc6749_refresh import sign_in


async def test_discovery_documents(harness: Harness) -> None:
    oidc = (await harness.client.get("/.well-known/openid-configuration")).json()
    oauth = (await harness.client.get("/.well-known/oauth-authorization-server")).json()
    assert oidc == oauth
    assert oidc["issuer"] == "http://127.0.0.1:8000"
    assert oidc["jwks_uri"] == "http://127.0.0.1:8000/jwks"
    assert oidc["token_endpoint"] == "http://127.0.0.1:8000/token"
    assert oidc["userinfo_endpoint"] == "http://127.0.0.1:8000/userinfo"
    assert oidc["id_token_signing_alg_values_supported"] == ["ES256"]
    assert oidc["grant_types_supported"] == [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ]
    assert oidc["authorization_endpoint"] == "http://127.0.0.1:8000/authorize"
    assert oidc["pushed_authorization_request_endpoint"] == "http://127.0.0.1:8000/par"
    assert oidc["end_session_endpoint"] == "http://127.0.0.1:8000/logout"
    assert "registration_endpoint" not in oidc  # dynamic registration is off by default
    assert oidc["response_types_supported"] == ["code"]
    assert oidc["code_challenge_methods_supported"] == ["S256"]  # plain is never accepted
    assert oidc["authorization_response_iss_parameter_supported"] is True
    assert oidc["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "PS256"]
    for algs in ("token_endpoint_auth_signing_alg_values_supported", "dpop_signing_alg_values_supported"):
        assert "none" not in oidc[algs] and not any(a.startswith("HS") for a in oidc[algs])
    for path in ("/siwe/nonce", "/siwe/verify"):
        assert any(str(v).endswith(path) for v in oidc.values())


async def test_jwks_publishes_public_keys_only(harness: Harness) -> None:
    reply = await harness.client.get("/jwks")
    assert reply.headers["content-type"].startswith("application/jwk-set+json")
    keys = reply.json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["kty"] == "EC" and key["crv"] == "P-256" and key["alg"] == "ES256" and key["use"] == "sig"
    assert key["kid"] and "d" not in key


async def test_userinfo(harness: Harness, wallet: Any) -> None:
    tokens = await sign_in(harness, wallet)
    reply = await harness.client.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "sub": f"did:pkh:eip155:1:{wallet.address}",
        "wallet_address": wallet.address,
        "chain_id": 1,
    }
    post = await harness.client.post(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert post.status_code == 200


async def test_userinfo_refuses_bad_tokens(harness: Harness, wallet: Any) -> None:
    tokens = await sign_in(harness, wallet)
    c = harness.client
    missing = await c.get("/userinfo")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    for bad in ("garbage", tokens["id_token"], tokens["access_token"][:-6] + "AAAAAA"):
        r = await c.get("/userinfo", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    harness.clock.advance(harness.settings.access_token_ttl_seconds + 1)
    expired = await c.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert expired.status_code == 401 and "expired" in expired.json()["error_description"]


async def test_token_signed_by_foreign_key_is_refused(harness: Harness, wallet: Any) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    tokens = await sign_in(harness, wallet)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    header = jwt.get_unverified_header(tokens["access_token"])
    forged = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers=header)
    r = await harness.client.get("/userinfo", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"


async def test_eddsa_signing(tmp_path: Any, clock: Any, sqlite_url: str, wallet: Any) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url, signing_alg="EdDSA")
    async with running_app(settings, clock) as h:
        tokens = await sign_in(h, wallet)
        jwk = (await h.client.get("/jwks")).json()["keys"][0]
        assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["alg"] == "EdDSA"
        claims = jwt.decode(
            tokens["id_token"],
            jwt.PyJWK(jwk).key,
            algorithms=["EdDSA"],
            audience="portcullis-demo",
            options={"verify_iat": False},
        )
        assert claims["wallet_address"] == wallet.address


async def test_health_and_ready(harness: Harness) -> None:
    assert (await harness.client.get("/health")).json() == {"status": "ok"}
    ready = (await harness.client.get("/ready")).json()
    assert (
        ready["status"] == "ready" and ready["compliance"] == "required" and ready["audit_sink"]["ok"] is True
    )
    await harness.app.state.provider.store.engine.dispose()  # the pool reopens on demand: still ready
    assert (await harness.client.get("/ready")).status_code == 200


async def test_not_found_is_json(harness: Harness) -> None:
    r = await harness.client.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
