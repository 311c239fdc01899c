"""Chain names for people (app/chain/names.py) and EIP-55 addresses grouped for reading."""

from __future__ import annotations

import pytest
from eth_utils import to_checksum_address

from app.chain.names import chain_name, grouped_address


@pytest.mark.parametrize(
    ("chain_id", "name"),
    [
        (1, "Ethereum"),
        (10, "OP Mainnet"),
        (137, "Polygon"),
        (8453, "Base"),
        (42161, "Arbitrum One"),
        (11155111, "Sepolia"),
        (31337, "Portcullis development chain (31337)"),
        (987654, "chain 987654"),
    ],
)
def test_chain_names(chain_id: int, name: str) -> None:
    assert chain_name(chain_id) == name


def test_an_address_is_grouped_by_four_and_keeps_its_checksum_case() -> None:
    address = to_checksum_address("0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc")
    grouped = grouped_address(address)
    assert grouped == "0x3C44 CdDd B6a9 00fa 2b58 5dd2 99e0 3d12 FA42 93BC"
    assert grouped.replace(" ", "") == address
