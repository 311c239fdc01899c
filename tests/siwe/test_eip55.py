"""EIP-55 mixed-case checksum addresses: the spec's examples, strictness, and eth-utils agreement."""

from __future__ import annotations

import pytest
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from app.siwe import is_checksummed, to_checksum

# The test cases listed in EIP-55 itself (including its all-caps and all-lower examples, whose
# checksum happens to need no letter of the other case).
SPEC_EXAMPLES = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", SPEC_EXAMPLES)
def test_spec_examples(address: str) -> None:
    assert to_checksum(bytes.fromhex(address[2:])) == address
    assert is_checksummed(address)


@pytest.mark.parametrize("address", SPEC_EXAMPLES[4:])
def test_other_spellings_of_mixed_case_addresses_are_refused(address: str) -> None:
    assert not is_checksummed(address.lower())
    assert not is_checksummed("0x" + address[2:].upper())
    assert not is_checksummed(address.swapcase().replace("0X", "0x"))


@pytest.mark.parametrize(
    "address",
    [
        "",
        "0x",
        "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAedd",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg",
        " 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    ],
)
def test_malformed_addresses_are_not_checksummed(address: str) -> None:
    assert not is_checksummed(address)


def test_to_checksum_needs_20_bytes() -> None:
    with pytest.raises(ValueError, match="20 bytes"):
        to_checksum(bytes(19))


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=20, max_size=20))
def test_agrees_with_eth_utils(raw: bytes) -> None:
    expected = to_checksum_address(raw)
    assert to_checksum(raw) == expected
    assert is_checksummed(expected)
    lowered = expected.lower()
    assert is_checksummed(lowered) == (lowered == expected)
