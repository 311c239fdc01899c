"""A real anvil with the ComplianceRegistry deployed, for integration tests that grant and revoke on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3 import Web3

from tests.anvil import Anvil, deploy, send


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    with Anvil() as anvil:
        yield anvil


@pytest.fixture(scope="module")
def registry(chain: Anvil) -> str:
    """The registry's address; account 1 (the CLI's officer key) holds the attester and revoker roles."""
    admin, officer = chain.accounts[0], chain.accounts[1]
    contract = deploy(chain.w3, "ComplianceRegistry", admin, sender=admin)
    for role in ("ATTESTER_ROLE", "REVOKER_ROLE"):
        send(contract.functions.grantRole(Web3.keccak(text=role), officer), admin)
    return str(contract.address)
