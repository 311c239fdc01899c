"""RFC 8176 amr values, the two Portcullis acr classes, and RFC 9470 acr_values / max_age decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.mfa import acr
from app.mfa.acr import ACR_WALLET, ACR_WALLET_MFA

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_amr_of_a_session() -> None:
    assert acr.combine_amr(("siwe",)) == ("siwe",)
    assert acr.combine_amr(("siwe",), acr.AMR_TOTP) == ("siwe", "otp", "mfa")
    assert acr.combine_amr(("siwe",), acr.AMR_WEBAUTHN) == ("siwe", "hwk", "user", "mfa")
    assert acr.combine_amr(("siwe", "otp", "mfa"), acr.AMR_WEBAUTHN) == ("siwe", "otp", "mfa", "hwk", "user")
    assert acr.combine_amr(("otp",)) == ("otp",)  # a factor alone is not multi-factor


def test_acr_for() -> None:
    assert acr.acr_for(["siwe"]) == ACR_WALLET
    assert acr.acr_for(["siwe", "otp", "mfa"]) == ACR_WALLET_MFA
    assert acr.acr_for(["siwe", "hwk", "user"]) == ACR_WALLET_MFA
    assert acr.acr_for(["siwe", "user"]) == ACR_WALLET  # presence alone is no second factor
    with pytest.raises(ValueError):
        acr.acr_for(["otp"])


@pytest.mark.parametrize(
    ("session", "requested", "ok"),
    [
        (ACR_WALLET, None, True),
        (ACR_WALLET, "", True),
        (ACR_WALLET, ACR_WALLET, True),
        (ACR_WALLET, ACR_WALLET_MFA, False),
        (ACR_WALLET_MFA, ACR_WALLET, True),  # stronger satisfies weaker
        (ACR_WALLET_MFA, ACR_WALLET_MFA, True),
        (ACR_WALLET, f"{ACR_WALLET_MFA} {ACR_WALLET}", True),  # any listed value will do
        (ACR_WALLET, [ACR_WALLET_MFA], False),
        (ACR_WALLET, "urn:example:unknown", True),  # voluntary: unknown values are ignored
        (ACR_WALLET, f"urn:example:unknown {ACR_WALLET_MFA}", False),
        ("urn:example:other", ACR_WALLET, False),
    ],
)
def test_satisfies(session: str, requested: str | list[str] | None, ok: bool) -> None:
    assert acr.satisfies(session, requested) is ok


def test_max_age() -> None:
    assert not acr.needs_reauthentication(NOW - timedelta(seconds=300), NOW, None)
    assert not acr.needs_reauthentication(NOW - timedelta(seconds=300), NOW, 300)
    assert acr.needs_reauthentication(NOW - timedelta(seconds=301), NOW, 300)
    assert acr.needs_reauthentication(NOW - timedelta(seconds=1), NOW, 0)
    with pytest.raises(ValueError):
        acr.needs_reauthentication(NOW, NOW, -1)


def test_unmet_names_what_to_ask_for() -> None:
    old = NOW - timedelta(minutes=10)
    assert acr.unmet(ACR_WALLET_MFA, old, NOW, acr_values=ACR_WALLET_MFA, max_age=None) is None
    assert acr.unmet(ACR_WALLET, old, NOW, acr_values=f"x {ACR_WALLET_MFA}", max_age=None) == acr.Unmet(
        (ACR_WALLET_MFA,), None
    )
    assert acr.unmet(ACR_WALLET_MFA, old, NOW, acr_values=None, max_age=60) == acr.Unmet((), 60)
    assert acr.unmet(ACR_WALLET, old, NOW, acr_values=ACR_WALLET_MFA, max_age=60) == acr.Unmet(
        (ACR_WALLET_MFA,), 60
    )


def test_recent_strong_auth() -> None:
    fresh = NOW - timedelta(minutes=1)
    stale = NOW - timedelta(minutes=6)
    assert acr.recent_strong_auth(["siwe"], fresh, NOW, enrolled=False)
    assert not acr.recent_strong_auth(["siwe"], fresh, NOW, enrolled=True)
    assert acr.recent_strong_auth(["siwe", "otp", "mfa"], fresh, NOW, enrolled=True)
    assert not acr.recent_strong_auth(["siwe", "otp", "mfa"], stale, NOW, enrolled=True)
    assert not acr.recent_strong_auth(["otp"], fresh, NOW, enrolled=True)
