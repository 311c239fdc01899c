"""RFC 7515 compact JWS as the SDK parses it: strict base64url (RFC 7515 section 2), JSON objects only,
and a signature check whose fit of algorithm to key is decided once per key."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from portcullis_resource import jws


def seg(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def es256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_base64url_round_trips_every_length() -> None:
    for n in range(0, 70):
        raw = bytes(range(n))
        assert jws.b64decode(jws.b64encode(raw)) == raw


@pytest.mark.parametrize(
    "text",
    [
        "ab+c",  # standard alphabet, not base64url
        "ab/c",
        "abc=",  # padding is not part of the JWS encoding
        "ab c",  # a character outside the alphabet is refused, not skipped
        "a!bc",
        "abcde",  # a length no encoding has (4k + 1)
        "ab\u00e9c",
    ],
)
def test_base64url_is_strict(text: str) -> None:
    with pytest.raises(jws.JwsError, match="not base64url"):
        jws.b64decode(text)


@pytest.mark.parametrize(
    "body",
    [b"[1]", b'"text"', b"NaN", b'{"a": NaN}', b'{"a": "\\ud800"}', b"\xff\xfe", b'{"a": 1'],
)
def test_a_segment_must_be_a_json_object(body: bytes) -> None:
    with pytest.raises(jws.JwsError):
        jws.decode_object(seg(body))


def test_split_refuses_other_shapes() -> None:
    for token in ("a.b", "a.b.c.d", "x" * (jws.MAX_JWS + 1)):
        with pytest.raises(jws.JwsError):
            jws.split(token)


def test_the_verifier_checks_the_signature_and_the_fit_of_alg_to_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    data = b"header.payload"
    check = jws.verifier("ES256", key.public_key())
    check(data, es256(key, data))
    with pytest.raises(jws.JwsError, match="bad signature"):
        check(b"header.other", es256(key, data))
    with pytest.raises(jws.JwsError, match="wrong length"):
        check(data, es256(key, data)[:-1])
    for alg in ("ES384", "EdDSA", "RS256", "PS256", "HS256", "none"):
        with pytest.raises(jws.JwsError, match="does not fit"):
            jws.verifier(alg, key.public_key())
    with pytest.raises(jws.JwsError, match="does not fit"):
        jws.verifier("ES256", ed25519.Ed25519PrivateKey.generate().public_key())
    ed = ed25519.Ed25519PrivateKey.generate()
    jws.verifier("EdDSA", ed.public_key())(data, ed.sign(data))
