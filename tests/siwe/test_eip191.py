"""EIP-191 personal_sign hashing and secp256k1 recovery against eth-account signatures."""

from __future__ import annotations

import pytest
from coincurve import PublicKey
from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st

from app.siwe import (
    InvalidSignature,
    MalformedSignature,
    decode_signature,
    personal_message_hash,
    recover_address,
)
from app.siwe.eip191 import SECP256K1_N

ACCOUNT = Account.from_key(bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"))
MESSAGE = b"Portcullis test message"


def sign(message: bytes = MESSAGE) -> bytes:
    return bytes(ACCOUNT.sign_message(encode_defunct(primitive=message)).signature)


def with_v(signature: bytes, v: int) -> bytes:
    return signature[:64] + bytes((v,))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_personal_message_hash_matches_eth_account(message: bytes) -> None:
    assert personal_message_hash(message) == bytes(defunct_hash_message(primitive=message))


def test_personal_message_hash_known_value() -> None:
    # keccak256("\x19Ethereum Signed Message:\n5hello"), a widely published value.
    expected = "50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750"
    assert personal_message_hash(b"hello").hex() == expected


def test_recovers_eth_account_signer_from_hex_and_bytes() -> None:
    signature = sign()
    assert recover_address(MESSAGE, signature) == ACCOUNT.address
    assert recover_address(MESSAGE, "0x" + signature.hex()) == ACCOUNT.address
    assert recover_address(MESSAGE, "0x" + signature.hex().upper()) == ACCOUNT.address


def test_v_0_and_1_are_accepted() -> None:
    signature = sign()
    assert signature[64] in (27, 28)
    assert recover_address(MESSAGE, with_v(signature, signature[64] - 27)) == ACCOUNT.address


def test_decode_normalises_v_to_recovery_id() -> None:
    signature = sign()
    decoded = decode_signature(signature)
    assert decoded[:64] == signature[:64]
    assert decoded[64] == signature[64] - 27
    assert decode_signature(with_v(signature, decoded[64])) == decoded


def test_other_message_recovers_other_address() -> None:
    assert recover_address(MESSAGE + b"!", sign()) != ACCOUNT.address


@pytest.mark.parametrize("v", [2, 26, 29, 35, 37, 255])
def test_bad_v_is_malformed(v: int) -> None:
    with pytest.raises(MalformedSignature, match="v must be"):
        decode_signature(with_v(sign(), v))


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        bytes(64),
        bytes(66),
        "",
        "0x",
        "0x" + "ab" * 64,
        "0x" + "ab" * 66,
        "0x" + "a" * 131,
        "ab" * 65,
        "0X" + "ab" * 65,
        "0x" + "zz" * 65,
        "0x" + "ab" * 64 + " 1",
        "0x " + "ab" * 65,
        "0x" + "ab " * 43 + "ab",
    ],
)
def test_wrong_shapes_are_malformed(signature: str | bytes) -> None:
    with pytest.raises(MalformedSignature) as caught:
        decode_signature(signature)
    assert caught.value.code == "malformed_signature"
    assert caught.value.status == 400


def test_truncated_signature_is_malformed() -> None:
    signature = sign()
    with pytest.raises(MalformedSignature, match="65 bytes"):
        recover_address(MESSAGE, signature[:-1])
    with pytest.raises(MalformedSignature):
        recover_address(MESSAGE, "0x" + signature.hex()[:-2])


def test_non_string_non_bytes_is_malformed() -> None:
    with pytest.raises(MalformedSignature, match="hex string or raw bytes"):
        decode_signature(12345)  # type: ignore[arg-type]


def test_r_and_s_ranges() -> None:
    signature = sign()
    n = SECP256K1_N.to_bytes(32, "big")
    with pytest.raises(MalformedSignature, match="r is outside"):
        decode_signature(bytes(32) + signature[32:])
    with pytest.raises(MalformedSignature, match="r is outside"):
        decode_signature(n + signature[32:])
    with pytest.raises(MalformedSignature, match="s is zero"):
        decode_signature(signature[:32] + bytes(32) + signature[64:])
    with pytest.raises(MalformedSignature, match="upper half"):
        decode_signature(signature[:32] + n + signature[64:])


def test_high_s_twin_is_refused_although_it_recovers_the_same_key() -> None:
    signature = sign()
    s = int.from_bytes(signature[32:64], "big")
    assert s <= SECP256K1_N // 2  # eth-account signs low-s
    high_s = (SECP256K1_N - s).to_bytes(32, "big")
    flipped = signature[:32] + high_s + bytes((1 - (signature[64] - 27),))
    # The twin is a valid ECDSA signature of the same key (malleability)...
    twin = PublicKey.from_signature_and_message(flipped, personal_message_hash(MESSAGE), hasher=None)
    original = PublicKey.from_signature_and_message(
        decode_signature(signature), personal_message_hash(MESSAGE), hasher=None
    )
    assert twin.format() == original.format()
    # ...and EIP-2 refuses it.
    with pytest.raises(MalformedSignature, match="EIP-2"):
        recover_address(MESSAGE, flipped[:64] + bytes((flipped[64] + 27,)))


def test_unrecoverable_signature_is_invalid() -> None:
    # r = 5 is not the x coordinate of any secp256k1 point, so no public key recovers.
    signature = (5).to_bytes(32, "big") + (7).to_bytes(32, "big") + b"\x1b"
    with pytest.raises(InvalidSignature) as caught:
        recover_address(MESSAGE, signature)
    assert caught.value.code == "invalid_signature"
    assert caught.value.status == 401


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_fresh_keys_round_trip(message: bytes) -> None:
    account = Account.create()
    signature = account.sign_message(encode_defunct(primitive=message)).signature
    assert recover_address(message, bytes(signature)) == account.address
