"""EIP-155 chain ids as people know them, and EIP-55 addresses grouped for reading (the hosted page).

Pure. The table holds the common EVM chains (chainlist.org's names for them) and Portcullis' own development
chain; any other id reads "chain <id>".
"""

from __future__ import annotations

DEV_CHAIN_ID = 31337

NAMES: dict[int, str] = {
    1: "Ethereum",
    10: "OP Mainnet",
    56: "BNB Smart Chain",
    100: "Gnosis",
    137: "Polygon",
    324: "zkSync Era",
    8453: "Base",
    42161: "Arbitrum One",
    43114: "Avalanche C-Chain",
    59144: "Linea",
    534352: "Scroll",
    11155111: "Sepolia",
    17000: "Holesky",
    84532: "Base Sepolia",
    DEV_CHAIN_ID: f"Portcullis development chain ({DEV_CHAIN_ID})",
}


def chain_name(chain_id: int) -> str:
    """The chain's common name, or ``chain <id>`` for one the table does not know."""
    return NAMES.get(chain_id, f"chain {chain_id}")


def grouped_address(address: str, size: int = 4) -> str:
    """An address with its hex digits in groups of ``size`` after ``0x`` (every character kept, so the EIP-55
    checksum case stays readable): ``0xAbCd 1234 ...``."""
    digits = address[2:] if address[:2].lower() == "0x" else address
    groups = [digits[i : i + size] for i in range(0, len(digits), size)]
    return " ".join([f"0x{groups[0]}" if groups else "0x", *groups[1:]])
