"""Fixtures for the contract tests: one anvil per test module, each test inside an evm_snapshot/evm_revert."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.anvil import Anvil


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    with Anvil() as anvil:
        yield anvil


@pytest.fixture(autouse=True)
def _isolated(request: pytest.FixtureRequest) -> Iterator[None]:
    """Undo each test's chain writes. Module-scoped deployments are set up before this fixture (pytest sets up
    wider scopes first), so they survive from test to test; tests that use no chain take no snapshot."""
    if "chain" not in request.fixturenames:
        yield
        return
    anvil: Anvil = request.getfixturevalue("chain")
    snapshot = anvil.snapshot()
    yield
    anvil.revert(snapshot)
