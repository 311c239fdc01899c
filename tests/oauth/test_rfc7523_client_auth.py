"""RFC 6749 2.3 / RFC 7523 3 client authentication, with the FAPI 2.0 assertion restrictions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from app.errors import InvalidClient, InvalidRequest
from app.oauth.client_auth import ASSERTION_TYPE, BasicAuthFailed, MemoryAssertionJtiStore, authenticate
from app.oauth.clients import ClientRegistry, parse_client

ISSUER = "https://auth.example.com"
TOKEN_ENDPOINT = "https://auth.example.com/token"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SECRET = "s3cret:with+odd chars/and-length"


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(alg_cls: Any, key: Any, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = alg_cls.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid}


@pytest.fixture
def registry() -> ClientRegistry:
    return ClientRegistry(
        [
            parse_client(
                {
                    "client_id": "basic-app",
                    "redirect_uris": ["https://app.example.com/cb"],
                    "token_endpoint_auth_method": "client_secret_basic",
                    "client_secret": SECRET,
                }
            ),
            parse_client(
                {
                    "client_id": "post-app",
                    "redirect_uris": ["https://app.example.com/cb"],
                    "token_endpoint_auth_method": "client_secret_post",
                    "client_secret": SECRET,
                }
            ),
            parse_client(
                {
                    "client_id": "spa",
                    "redirect_uris": ["https://spa.example.com/cb"],
                    "token_endpoint_auth_method": "none",
                }
            ),
            parse_client(
                {
                    "client_id": "svc",
                    "grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "private_key_jwt",
                    "require_pushed_authorization_requests": True,
                    "jwks": {
                        "keys": [
                            public_jwk(ECAlgorithm, EC_KEY, "ec"),
                            public_jwk(OKPAlgorithm, ED_KEY, "ed"),
                            public_jwk(RSAAlgorithm, RSA_KEY, "rsa"),
                        ]
                    },
                }
            ),
        ]
    )


@pytest.fixture
def store() -> MemoryAssertionJtiStore:
    return MemoryAssertionJtiStore(FixedClock(NOW))


def claims(**change: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": "svc",
        "sub": "svc",
        "aud": ISSUER,
        "exp": int((NOW + timedelta(minutes=2)).timestamp()),
        "iat": int(NOW.timestamp()),
        "jti": "jti-1",
    }
    base.update(change)
    return {k: v for k, v in base.items() if v is not None}


def assertion(payload: dict[str, Any] | None = None, *, alg: str = "ES256", kid: str = "ec") -> str:
    key = {"ES256": EC_KEY, "EdDSA": ED_KEY, "PS256": RSA_KEY, "RS256": RSA_KEY}[alg]
    return jwt.encode(payload or claims(), key, algorithm=alg, headers={"kid": kid})


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A JWT built by hand, for what PyJWT refuses to produce (alg none, HMAC with a public key)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if secret is None:
        return signing_input + "."
    return signing_input + "." + b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


async def run(
    registry: ClientRegistry,
    store: MemoryAssertionJtiStore,
    form: dict[str, str],
    header: str | None = None,
) -> str:
    client = await authenticate(
        registry,
        authorization_header=header,
        form=form,
        issuer=ISSUER,
        token_endpoint=TOKEN_ENDPOINT,
        now=NOW,
        jti_store=store,
    )
    return client.client_id


def jwt_form(token: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": token,
    }


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


# --- each method succeeds ---------------------------------------------------------------------------------


async def test_client_secret_basic(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    assert (
        await run(registry, store, {"grant_type": "authorization_code"}, basic("basic-app", SECRET))
        == "basic-app"
    )


async def test_client_secret_post(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    assert await run(registry, store, {"client_id": "post-app", "client_secret": SECRET}) == "post-app"


async def test_none(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    assert await run(registry, store, {"client_id": "spa", "code_verifier": "x" * 43}) == "spa"


@pytest.mark.parametrize(("alg", "kid"), [("ES256", "ec"), ("EdDSA", "ed"), ("PS256", "rsa")])
async def test_private_key_jwt(
    registry: ClientRegistry, store: MemoryAssertionJtiStore, alg: str, kid: str
) -> None:
    assert await run(registry, store, jwt_form(assertion(alg=alg, kid=kid))) == "svc"


# --- client secrets -----------------------------------------------------------------------------------------


async def test_basic_wrong_secret(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    with pytest.raises(BasicAuthFailed) as info:
        await run(registry, store, {}, basic("basic-app", SECRET + "x"))
    assert info.value.status == 401 and info.value.description == "client authentication failed"
    assert info.value.headers()["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":secret-only").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    ],
)
async def test_basic_malformed(registry: ClientRegistry, store: MemoryAssertionJtiStore, header: str) -> None:
    with pytest.raises(InvalidClient, match="malformed"):
        await run(registry, store, {}, header)


async def test_basic_secret_is_form_urlencoded(
    registry: ClientRegistry, store: MemoryAssertionJtiStore
) -> None:
    # RFC 6749 2.3.1: the raw secret (with ':' and '+') only works once form-urlencoded.
    raw = base64.b64encode(f"basic-app:{SECRET}".encode()).decode()
    with pytest.raises(InvalidClient):
        await run(registry, store, {}, "Basic " + raw)


async def test_other_authorization_scheme_refused(
    registry: ClientRegistry, store: MemoryAssertionJtiStore
) -> None:
    with pytest.raises(InvalidClient, match="Basic"):
        await run(registry, store, {"client_id": "spa"}, "Bearer abc")


async def test_post_wrong_secret_and_unknown_client_look_alike(
    registry: ClientRegistry, store: MemoryAssertionJtiStore
) -> None:
    with pytest.raises(InvalidClient) as wrong:
        await run(registry, store, {"client_id": "post-app", "client_secret": "guess"})
    with pytest.raises(InvalidClient) as unknown:
        await run(registry, store, {"client_id": "nobody", "client_secret": "guess"})
    assert wrong.value.description == unknown.value.description == "client authentication failed"


async def test_two_methods_at_once(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    with pytest.raises(InvalidRequest, match="exactly one"):
        await run(
            registry, store, {"client_id": "basic-app", "client_secret": SECRET}, basic("basic-app", SECRET)
        )
    with pytest.raises(InvalidRequest, match="exactly one"):
        await run(registry, store, {**jwt_form(assertion()), "client_secret": SECRET})


@pytest.mark.parametrize(
    ("form", "header"),
    [
        ({"client_id": "basic-app", "client_secret": SECRET}, None),  # basic client using post
        ({}, basic("post-app", SECRET)),  # post client using basic
        ({"client_id": "basic-app"}, None),  # confidential client claiming none
        ({"client_id": "svc"}, None),
        ({"client_id": "spa", "client_secret": SECRET}, None),  # public client sending a secret
    ],
)
async def test_method_mismatch(
    registry: ClientRegistry, store: MemoryAssertionJtiStore, form: dict[str, str], header: str | None
) -> None:
    # RFC 6749 10.10: said in the words an unknown client gets; the method is named in the log only
    with pytest.raises(InvalidClient, match=r"^client authentication failed$") as info:
        await run(registry, store, form, header)
    assert "registered for" in (info.value.debug or "")


async def test_no_authentication_at_all(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    with pytest.raises(InvalidClient, match="no client authentication"):
        await run(registry, store, {"grant_type": "client_credentials"})


async def test_body_client_id_must_match_basic(
    registry: ClientRegistry, store: MemoryAssertionJtiStore
) -> None:
    with pytest.raises(InvalidRequest, match="does not match"):
        await run(registry, store, {"client_id": "spa"}, basic("basic-app", SECRET))


# --- private_key_jwt ----------------------------------------------------------------------------------------


async def expect_refused(
    registry: ClientRegistry, store: MemoryAssertionJtiStore, token: str, match: str
) -> None:
    with pytest.raises(InvalidClient, match=match) as info:
        await run(registry, store, jwt_form(token))
    assert info.value.status == 401


async def expect_refused_as_unknown(
    registry: ClientRegistry, store: MemoryAssertionJtiStore, token: str, debug: str
) -> None:
    """Refused before the signature proved anything: the words an unknown client gets, the reason logged."""
    with pytest.raises(InvalidClient, match=r"^client authentication failed$") as info:
        await run(registry, store, jwt_form(token))
    assert info.value.status == 401 and debug in (info.value.debug or "")


async def test_alg_none_refused(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    await expect_refused(registry, store, hand_made({"alg": "none", "kid": "ec"}, claims(), None), "alg")


async def test_hs256_algorithm_confusion_refused(
    registry: ClientRegistry, store: MemoryAssertionJtiStore
) -> None:
    for key, kid in ((EC_KEY, "ec"), (RSA_KEY, "rsa")):
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        token = hand_made({"alg": "HS256", "typ": "JWT", "kid": kid}, claims(), pem)
        await expect_refused(registry, store, token, "alg")


async def test_rs256_refused(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    await expect_refused(registry, store, assertion(alg="RS256", kid="rsa"), "alg")


async def test_unknown_kid_refused(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    await expect_refused_as_unknown(registry, store, assertion(kid="other"), "no key with kid 'other'")


async def test_missing_kid_refused(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    await expect_refused(registry, store, jwt.encode(claims(), EC_KEY, algorithm="ES256"), "kid")


async def test_key_of_wrong_type_for_alg(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    await expect_refused_as_unknown(registry, store, assertion(alg="ES256", kid="rsa"), "cannot verify")


async def test_signature_by_unregistered_key(
    registry: ClientRegistry, store: MemoryAssertionJtiStore
) -> None:
    token = jwt.encode(
        claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "ec"}
    )
    await expect_refused_as_unknown(registry, store, token, "signature")


@pytest.mark.parametrize("aud", [TOKEN_ENDPOINT, [TOKEN_ENDPOINT], [ISSUER, TOKEN_ENDPOINT], [ISSUER]])
async def test_aud_must_be_the_issuer_string(
    registry: ClientRegistry, store: MemoryAssertionJtiStore, aud: str | list[str]
) -> None:
    await expect_refused(registry, store, assertion(claims(aud=aud)), "aud must be the issuer")


async def test_wrong_aud(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    await expect_refused(registry, store, assertion(claims(aud="https://evil.example")), "aud")


async def test_iss_differs_from_sub(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    await expect_refused(registry, store, assertion(claims(sub="someone-else")), "sub must equal iss")


async def test_iss_of_another_client(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    await expect_refused_as_unknown(
        registry, store, assertion(claims(iss="spa", sub="spa")), "registered for none"
    )


async def test_expired(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    await expect_refused(registry, store, assertion(claims(exp=int(NOW.timestamp()) - 1)), "expired")


async def test_missing_exp(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    await expect_refused(registry, store, assertion(claims(exp=None)), "exp")


async def test_exp_too_far_ahead(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    exp = int((NOW + timedelta(minutes=5, seconds=1)).timestamp())
    await expect_refused(registry, store, assertion(claims(exp=exp)), "5 minutes")


async def test_exp_exactly_five_minutes_accepted(
    registry: ClientRegistry, store: MemoryAssertionJtiStore
) -> None:
    exp = int((NOW + timedelta(minutes=5)).timestamp())
    assert await run(registry, store, jwt_form(assertion(claims(exp=exp)))) == "svc"


async def test_future_iat(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    iat = int((NOW + timedelta(seconds=61)).timestamp())
    await expect_refused(registry, store, assertion(claims(iat=iat)), "iat")


async def test_iat_within_skew_accepted(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    iat = int((NOW + timedelta(seconds=60)).timestamp())
    assert await run(registry, store, jwt_form(assertion(claims(iat=iat)))) == "svc"


async def test_missing_jti(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    await expect_refused(registry, store, assertion(claims(jti=None)), "jti")


async def test_replayed_jti(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    token = assertion()
    assert await run(registry, store, jwt_form(token)) == "svc"
    await expect_refused(registry, store, token, "already been used")
    # Another assertion reusing the jti is a replay too.
    await expect_refused(registry, store, assertion(alg="EdDSA", kid="ed"), "already been used")


async def test_wrong_assertion_type(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    form = {
        **jwt_form(assertion()),
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
    }
    with pytest.raises(InvalidClient, match="client_assertion_type"):
        await run(registry, store, form)


async def test_garbage_assertion(registry: ClientRegistry, store: MemoryAssertionJtiStore) -> None:
    await expect_refused(registry, store, "not.a.jwt", "well-formed")


async def test_body_client_id_must_match_assertion(
    registry: ClientRegistry, store: MemoryAssertionJtiStore
) -> None:
    with pytest.raises(InvalidRequest, match="does not match"):
        await run(registry, store, {**jwt_form(assertion()), "client_id": "spa"})


# --- the jti store ------------------------------------------------------------------------------------------


async def test_memory_store_expires_and_is_bounded() -> None:
    clock = FixedClock(NOW)
    store = MemoryAssertionJtiStore(clock, max_entries=2)
    soon = NOW + timedelta(minutes=1)
    assert not await store.seen("c", "a", soon)
    assert await store.seen("c", "a", soon)
    assert not await store.seen("other", "a", soon)  # jti is per client
    assert await store.seen("c", "b", soon)  # full of live entries: fails closed
    clock.current = soon + timedelta(seconds=1)
    assert not await store.seen("c", "b", soon + timedelta(minutes=5))  # expired entries purged
    assert len(store) == 1
