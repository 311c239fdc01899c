from __future__ import annotations

import pytest

from app.policy.model import DEFAULT_POLICY_PATH, Policy, load_policy


@pytest.fixture(scope="session")
def default_policy() -> Policy:
    return load_policy(DEFAULT_POLICY_PATH)
