"""CAIP-2 chain ids and CAIP-10 account ids (ChainAgnostic CAIPs 2 and 10), as authorization details use them.

``eip155:42161`` is a chain; ``eip155:42161:0xab16...`` an account on it. For the ``eip155`` namespace the
address must also be a 20-byte hex address; comparisons ignore its case (EIP-55 is a checksum, not identity).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CHAIN_ID = re.compile(r"[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}")
ACCOUNT_ID = re.compile(r"(?P<chain>[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}):(?P<address>[-.%a-zA-Z0-9]{1,128})")
EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True, slots=True)
class AccountId:
    """A parsed CAIP-10 account id."""

    chain: str  # CAIP-2
    address: str

    @property
    def key(self) -> str:
        """The address as compared: lowercase for ``eip155``, verbatim otherwise."""
        return self.address.lower() if self.chain.startswith("eip155:") else self.address


def is_chain_id(text: str) -> bool:
    return CHAIN_ID.fullmatch(text) is not None


def parse_account_id(text: str) -> AccountId | None:
    """The account id in ``text``, or None when it is not CAIP-10 (or not an EVM address on ``eip155``)."""
    match = ACCOUNT_ID.fullmatch(text)
    if match is None:
        return None
    chain, address = match["chain"], match["address"]
    if chain.startswith("eip155:") and EVM_ADDRESS.fullmatch(address) is None:
        return None
    return AccountId(chain, address)


def same_address(account: AccountId, address: str) -> bool:
    """Whether ``account`` is the wallet ``address`` (an ``0x`` address, any chain)."""
    return account.key == (address.lower() if EVM_ADDRESS.fullmatch(address) else address)
