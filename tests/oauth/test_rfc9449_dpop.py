"""RFC 9449 DPoP proofs: one test per section 4.3 check, built with real keys and PyJWT."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from app.errors import OAuthError, TemporarilyUnavailable
from app.oauth.dpop import (
    InvalidDpopProof,
    MemoryJtiStore,
    UseDpopNonce,
    access_token_binding,
    b64url_sha256,
    single_proof,
    thumbprint,
    verify_proof,
)

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
URL = "https://server.example.com/token"
TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"


class FakeClock:
    """A fixed clock (a fake: the real one is app.clock.SystemClock)."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


Key = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def new_key(alg: str) -> Key:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: Any, alg: str) -> dict[str, Any]:
    jwk: dict[str, Any] = jwt.get_algorithm_by_name(alg).to_jwk(key.public_key(), as_dict=True)
    return jwk


def make_proof(
    key: Any,
    alg: str = "ES256",
    *,
    htm: str = "POST",
    htu: str = URL,
    iat: datetime = NOW,
    jti: str | None = "",
    typ: str = "dpop+jwt",
    jwk: dict[str, Any] | None = None,
    **extra: Any,
) -> str:
    claims: dict[str, Any] = {"htm": htm, "htu": htu, "iat": int(iat.timestamp()), **extra}
    if jti is not None:
        claims["jti"] = jti or str(uuid.uuid4())
    if jwk is None:
        jwk = public_jwk(key, alg)
    return jwt.encode(claims, key, algorithm=alg, headers={"typ": typ, "jwk": jwk})


@pytest.fixture(scope="module")
def es256() -> Key:
    return new_key("ES256")


@pytest.fixture
def store() -> MemoryJtiStore:
    return MemoryJtiStore(FakeClock(NOW))


async def check(proof: str | None, store: MemoryJtiStore, **kwargs: Any) -> Any:
    kwargs.setdefault("method", "POST")
    kwargs.setdefault("url", URL)
    return await verify_proof(proof, now=NOW, jti_store=store, **kwargs)


async def refused(proof: str | None, store: MemoryJtiStore, match: str, **kwargs: Any) -> InvalidDpopProof:
    with pytest.raises(InvalidDpopProof, match=match) as info:
        await check(proof, store, **kwargs)
    assert info.value.error == "invalid_dpop_proof"
    return info.value


# Accepted proofs


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "PS256"])
async def test_valid_proof_each_alg(alg: str, store: MemoryJtiStore) -> None:
    key = new_key(alg)
    result = await check(make_proof(key, alg, jti="j1"), store)
    assert result.jkt == thumbprint(public_jwk(key, alg))
    assert result.alg == alg
    assert result.jti == "j1"
    assert result.iat == NOW
    assert result.claims["htu"] == URL
    assert access_token_binding(result.jkt) == {"cnf": {"jkt": result.jkt}}


async def test_token_endpoint_error_is_400_json(es256: Key, store: MemoryJtiStore) -> None:
    error = await refused(make_proof(es256, htm="GET"), store, "htm")
    assert error.status == 400
    assert error.headers() == {}
    assert error.to_json()["error"] == "invalid_dpop_proof"
    assert isinstance(error, OAuthError)


async def test_resource_server_error_is_401_with_dpop_challenge(es256: Key, store: MemoryJtiStore) -> None:
    error = await refused(make_proof(es256, htm="GET"), store, "htm", access_token=TOKEN)
    assert error.status == 401
    challenge = error.headers()["WWW-Authenticate"]
    assert challenge.startswith('DPoP error="invalid_dpop_proof"')
    assert 'algs="ES256 EdDSA PS256"' in challenge


# Section 4.3 item 1 and 2: one well-formed JWT


async def test_missing_proof(store: MemoryJtiStore) -> None:
    await refused(None, store, "required")


async def test_two_header_values_combined(es256: Key, store: MemoryJtiStore) -> None:
    await refused(f"{make_proof(es256)}, {make_proof(es256)}", store, "single compact JWS")


def test_two_header_fields() -> None:
    with pytest.raises(InvalidDpopProof, match="more than one"):
        single_proof(["a.b.c", "d.e.f"])
    assert single_proof([]) is None
    assert single_proof(["a.b.c"]) == "a.b.c"


async def test_not_a_jwt(store: MemoryJtiStore) -> None:
    await refused("not-a-jwt", store, "single compact JWS")
    await refused("YWJj.YWJj.YWJj", store, "header is malformed")


# Items 4 to 7: typ, alg, jwk, signature


async def test_wrong_typ(es256: Key, store: MemoryJtiStore) -> None:
    await refused(make_proof(es256, typ="JWT"), store, "typ")


async def test_alg_none(es256: Key, store: MemoryJtiStore) -> None:
    claims = {"htm": "POST", "htu": URL, "iat": int(NOW.timestamp()), "jti": "x"}
    proof = jwt.encode(
        claims, "", algorithm="none", headers={"typ": "dpop+jwt", "jwk": public_jwk(es256, "ES256")}
    )
    await refused(proof + "sig", store, "alg")  # a trailing signature so the compact form has three parts
    await refused(proof + "sig", store, "alg", allowed_algs=("none", "ES256"))


async def test_hs256_with_symmetric_key(store: MemoryJtiStore) -> None:
    secret = b"s" * 32
    jwk = {"kty": "oct", "k": "c3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3M"}
    proof = make_proof(secret, "HS256", jwk=jwk)
    await refused(proof, store, "alg")
    await refused(proof, store, "alg", allowed_algs=("HS256", "ES256"))


async def test_alg_not_allowed(store: MemoryJtiStore) -> None:
    key = new_key("EdDSA")
    await refused(make_proof(key, "EdDSA"), store, "alg", allowed_algs=("ES256",))


async def test_missing_jwk(es256: Key, store: MemoryJtiStore) -> None:
    claims = {"htm": "POST", "htu": URL, "iat": int(NOW.timestamp()), "jti": "x"}
    proof = jwt.encode(claims, es256, algorithm="ES256", headers={"typ": "dpop+jwt"})
    await refused(proof, store, "no jwk")


async def test_jwk_with_private_d(es256: Key, store: MemoryJtiStore) -> None:
    private_jwk: dict[str, Any] = jwt.get_algorithm_by_name("ES256").to_jwk(es256, as_dict=True)
    assert "d" in private_jwk
    await refused(make_proof(es256, jwk=private_jwk), store, "private key members")


async def test_jwk_not_matching_alg(es256: Key, store: MemoryJtiStore) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    p384_jwk: dict[str, Any] = jwt.get_algorithm_by_name("ES384").to_jwk(p384, as_dict=True)
    await refused(make_proof(es256, jwk=p384_jwk), store, "does not fit alg")
    await refused(make_proof(es256, jwk=public_jwk(new_key("EdDSA"), "EdDSA")), store, "does not fit alg")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_small_rsa_key(store: MemoryJtiStore) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    await refused(make_proof(key, "PS256"), store, "2048")


async def test_bad_signature(es256: Key, store: MemoryJtiStore) -> None:
    other = public_jwk(new_key("ES256"), "ES256")
    await refused(make_proof(es256, jwk=other), store, "signature")


async def test_tampered_payload(es256: Key, store: MemoryJtiStore) -> None:
    header, _, signature = make_proof(es256).split(".")
    _, payload, _ = make_proof(es256, htu="https://evil.example/token").split(".")
    await refused(f"{header}.{payload}.{signature}", store, "signature")


# Items 8 and 9: htm and htu


async def test_wrong_htm(es256: Key, store: MemoryJtiStore) -> None:
    await refused(make_proof(es256, htm="GET"), store, "htm")


@pytest.mark.parametrize("htu", ["https://server.example.com/other", "https://other.example.com/token"])
async def test_wrong_htu(es256: Key, store: MemoryJtiStore, htu: str) -> None:
    await refused(make_proof(es256, htu=htu), store, "htu")


@pytest.mark.parametrize(
    "htu",
    [
        "https://server.example.com/token?x=1#frag",
        "HTTPS://Server.Example.COM/token",
        "https://server.example.com:443/token",
        "https://server.example.com/%74oken",
    ],
)
async def test_htu_normalised_and_query_ignored(es256: Key, store: MemoryJtiStore, htu: str) -> None:
    await check(make_proof(es256, htu=htu), store, url=URL + "?code=abc")


async def test_htu_non_default_port_and_scheme_differ(es256: Key, store: MemoryJtiStore) -> None:
    await refused(make_proof(es256, htu="https://server.example.com:8443/token"), store, "htu")
    await refused(make_proof(es256, htu="http://server.example.com/token"), store, "htu")
    await check(make_proof(es256, htu="http://localhost/x"), store, url="http://LOCALHOST:80/x")


# Item 11: iat


async def test_stale_iat(es256: Key, store: MemoryJtiStore) -> None:
    await refused(make_proof(es256, iat=NOW - timedelta(seconds=61)), store, "too old")


async def test_future_iat(es256: Key, store: MemoryJtiStore) -> None:
    await refused(make_proof(es256, iat=NOW + timedelta(seconds=61)), store, "future")


async def test_iat_at_window_edges_accepted(es256: Key, store: MemoryJtiStore) -> None:
    await check(make_proof(es256, iat=NOW - timedelta(seconds=60)), store)
    await check(make_proof(es256, iat=NOW + timedelta(seconds=60)), store)


# jti: present and not replayed per key


async def test_missing_jti(es256: Key, store: MemoryJtiStore) -> None:
    await refused(make_proof(es256, jti=None), store, "jti")


async def test_replayed_jti(es256: Key, store: MemoryJtiStore) -> None:
    proof = make_proof(es256, jti="once")
    await check(proof, store)
    await refused(proof, store, "replay")
    await refused(make_proof(es256, jti="once", iat=NOW - timedelta(seconds=5)), store, "replay")


async def test_same_jti_under_another_key_is_not_a_replay(es256: Key, store: MemoryJtiStore) -> None:
    await check(make_proof(es256, jti="shared"), store)
    await check(make_proof(new_key("ES256"), jti="shared"), store)


async def test_refused_proof_does_not_use_up_its_jti(es256: Key, store: MemoryJtiStore) -> None:
    await refused(make_proof(es256, jti="later"), store, "ath", access_token=TOKEN)
    await check(make_proof(es256, jti="later", ath=b64url_sha256(TOKEN)), store, access_token=TOKEN)


async def test_memory_store_expires_and_is_bounded() -> None:
    clock = FakeClock(NOW)
    store = MemoryJtiStore(clock, max_entries=2)
    assert not await store.seen("k", "a", NOW + timedelta(seconds=10))
    assert await store.seen("k", "a", NOW + timedelta(seconds=10))
    assert not await store.seen("k", "b", NOW + timedelta(seconds=20))
    with pytest.raises(TemporarilyUnavailable):
        await store.seen("k", "c", NOW + timedelta(seconds=20))
    clock.current = NOW + timedelta(seconds=10)
    assert not await store.seen("k", "c", NOW + timedelta(seconds=30))
    assert len(store) == 2


# Item 12 (ath) and item 10 (nonce)


def test_ath_rfc9449_example() -> None:
    # RFC 9449 section 7.1: the example access token and its ath.
    assert b64url_sha256(TOKEN) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


async def test_ath_accepted(es256: Key, store: MemoryJtiStore) -> None:
    await check(make_proof(es256, ath=b64url_sha256(TOKEN)), store, access_token=TOKEN)


async def test_missing_ath(es256: Key, store: MemoryJtiStore) -> None:
    await refused(make_proof(es256), store, "ath", access_token=TOKEN)


async def test_wrong_ath(es256: Key, store: MemoryJtiStore) -> None:
    await refused(make_proof(es256, ath=b64url_sha256("another token")), store, "ath", access_token=TOKEN)


async def test_nonce_required(es256: Key, store: MemoryJtiStore) -> None:
    with pytest.raises(UseDpopNonce, match="required") as info:
        await check(make_proof(es256), store, nonce="n-1")
    assert info.value.error == "use_dpop_nonce"
    assert info.value.status == 400
    assert info.value.headers() == {"DPoP-Nonce": "n-1"}


async def test_wrong_nonce_at_resource_server(es256: Key, store: MemoryJtiStore) -> None:
    proof = make_proof(es256, nonce="old", ath=b64url_sha256(TOKEN))
    with pytest.raises(UseDpopNonce, match="stale or wrong") as info:
        await check(proof, store, nonce="n-2", access_token=TOKEN)
    assert info.value.error == "use_dpop_nonce"
    assert info.value.status == 401
    headers = info.value.headers()
    assert headers["DPoP-Nonce"] == "n-2"
    assert headers["WWW-Authenticate"].startswith('DPoP error="use_dpop_nonce"')


async def test_nonce_accepted(es256: Key, store: MemoryJtiStore) -> None:
    await check(make_proof(es256, nonce="n-3"), store, nonce="n-3")


# RFC 7638


def test_thumbprint_rfc7638_example() -> None:
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_refuses_incomplete_jwk() -> None:
    with pytest.raises(ValueError):
        thumbprint({"kty": "EC", "crv": "P-256", "x": "abc"})
    with pytest.raises(ValueError):
        thumbprint({"kty": "unknown"})
