"""Fixtures for the chain reader tests: one anvil for the folder with the registry and every stand-in
deployed once, each test inside an evm_snapshot/evm_revert, and a fresh RPC client per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from app.chain.rpc import Web3Rpc
from tests.anvil import CHAIN_ID, Anvil
from tests.chain.helpers import World, deploy_world


@pytest.fixture(scope="package")
def evm() -> Iterator[Anvil]:
    with Anvil() as anvil:
        yield anvil


@pytest.fixture(scope="package")
def world(evm: Anvil) -> World:
    return deploy_world(evm)


@pytest.fixture(autouse=True)
def _evm_isolated(request: pytest.FixtureRequest) -> Iterator[None]:
    """Undo each test's chain writes (the package-scoped deployments are made before the snapshot)."""
    if "evm" not in request.fixturenames:
        yield
        return
    anvil: Anvil = request.getfixturevalue("evm")
    snapshot = anvil.snapshot()
    yield
    anvil.revert(snapshot)


@pytest.fixture
async def rpc(evm: Anvil) -> AsyncIterator[Web3Rpc]:
    client = Web3Rpc(CHAIN_ID, [evm.url], timeout=5.0)
    yield client
    await client.aclose()
