"""RFC 9470 section 3 step-up: the error body and challenge; ``enforce`` choosing step-up, deny or issue."""

from __future__ import annotations

import pytest

from app.errors import OAuthError
from app.policy.engine import enforce, evaluate
from app.policy.errors import InsufficientUserAuthentication, PolicyDenied
from app.policy.model import Policy
from tests.policy.helpers import MFA, NOW, auth, facts


def test_error_renders_json_and_challenge() -> None:
    exc = InsufficientUserAuthentication(acr_values=[MFA], max_age=300)
    assert isinstance(exc, OAuthError)
    assert exc.status == 401
    assert exc.to_json() == {
        "error": "insufficient_user_authentication",
        "error_description": "a different authentication level is required",
        "acr_values": MFA,
        "max_age": "300",
    }
    assert exc.headers() == {
        "WWW-Authenticate": 'Bearer error="insufficient_user_authentication", '
        'error_description="a different authentication level is required", '
        f'acr_values="{MFA}", max_age="300"'
    }


def test_error_with_only_max_age() -> None:
    exc = InsufficientUserAuthentication(max_age=60)
    assert "acr_values" not in exc.to_json()
    assert exc.headers()["WWW-Authenticate"].endswith('max_age="60"')


def test_error_needs_something_to_ask_for() -> None:
    with pytest.raises(ValueError):
        InsufficientUserAuthentication()


def test_challenge_values_cannot_break_the_quoted_string() -> None:
    exc = InsufficientUserAuthentication('say "hi"\\\n', acr_values=["a"])
    header = exc.headers()["WWW-Authenticate"]
    assert "error_description=\"say 'hi'\"" in header


def test_enforce_raises_step_up(default_policy: Policy) -> None:
    decision = evaluate(default_policy, facts(), ["openid", "vault:withdraw"], [], auth(), NOW)
    with pytest.raises(InsufficientUserAuthentication) as info:
        enforce(decision)
    assert info.value.acr_values == (MFA,)
    assert info.value.max_age == 300


def test_enforce_denies_when_openid_is_refused(default_policy: Policy) -> None:
    decision = evaluate(default_policy, facts(sanctioned=True), ["openid", "profile"], [], auth(), NOW)
    with pytest.raises(PolicyDenied) as info:
        enforce(decision)
    assert info.value.error == "access_denied"
    assert info.value.status == 403
    assert info.value.description == (
        "the policy grants none of the requested access: openid: the account is sanctioned; "
        "profile: the account is sanctioned"
    )


def test_enforce_passes_a_narrower_grant(default_policy: Policy) -> None:
    decision = evaluate(default_policy, facts(residence="US"), ["openid", "perps:trade"], [], auth(), NOW)
    assert enforce(decision) is decision
    assert decision.scope == "openid"


def test_step_up_beats_partial_grant_only_for_auth_alone(default_policy: Policy) -> None:
    # perps:trade is refused for residence; vault:withdraw only for its acr: step-up wins.
    mixed = evaluate(
        default_policy, facts(residence="US"), ["openid", "perps:trade", "vault:withdraw"], [], auth(), NOW
    )
    assert mixed.outcome == "step_up"
    # Frozen: vault:withdraw fails acr and the record rule: a step-up would not help, so partial grant.
    frozen = evaluate(
        default_policy,
        facts(eligible_record=False, flags=["frozen"]),
        ["openid", "vault:withdraw"],
        [],
        auth(),
        NOW,
    )
    assert frozen.step_up is None
    assert frozen.outcome == "issue"
    assert frozen.granted_scopes == ("openid",)
