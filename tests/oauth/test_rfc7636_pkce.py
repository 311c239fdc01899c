"""RFC 7636 PKCE (S256 only): the appendix B vector, refused methods and malformed values."""

from __future__ import annotations

import pytest

from app.errors import InvalidGrant, InvalidRequest
from app.oauth import pkce

# RFC 7636 appendix B.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_appendix_b_vector() -> None:
    assert pkce.s256(VERIFIER) == CHALLENGE
    assert pkce.validate_challenge(CHALLENGE, "S256") == CHALLENGE
    pkce.verify(VERIFIER, CHALLENGE)


def test_plain_refused() -> None:
    with pytest.raises(InvalidRequest, match="plain") as info:
        pkce.validate_challenge(VERIFIER, "plain")
    assert info.value.error == "invalid_request"


@pytest.mark.parametrize("method", [None, ""])
def test_missing_method_refused_since_it_means_plain(method: str | None) -> None:
    with pytest.raises(InvalidRequest, match="plain"):
        pkce.validate_challenge(CHALLENGE, method)


@pytest.mark.parametrize("method", ["s256", "S512", "SHA256"])
def test_unknown_method_refused(method: str) -> None:
    with pytest.raises(InvalidRequest, match="S256"):
        pkce.validate_challenge(CHALLENGE, method)


@pytest.mark.parametrize(
    "challenge",
    [None, "", "a" * 42, "a" * 129, CHALLENGE[:-1] + "=", CHALLENGE[:-1] + "+", CHALLENGE[:-1] + "é"],
)
def test_malformed_challenge_refused(challenge: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        pkce.validate_challenge(challenge, "S256")
    assert info.value.error == "invalid_request"
    assert info.value.status == 400


def test_challenge_bounds_accepted() -> None:
    for challenge in ("a" * 43, "A-._~" * 25 + "abc"):
        assert pkce.validate_challenge(challenge, "S256") == challenge


@pytest.mark.parametrize(
    "verifier",
    [None, "", "a" * 42, "a" * 129, VERIFIER[:-1] + " ", VERIFIER[:-1] + "/", VERIFIER[:-1] + "\u00e9"],
)
def test_malformed_verifier_refused(verifier: str | None) -> None:
    with pytest.raises(InvalidGrant, match="PKCE verification failed") as info:
        pkce.verify(verifier, CHALLENGE)
    assert info.value.error == "invalid_grant"


def test_wrong_verifier_refused() -> None:
    with pytest.raises(InvalidGrant, match="PKCE verification failed"):
        pkce.verify(VERIFIER[:-1] + "Y", CHALLENGE)


def test_verifier_of_128_chars_accepted() -> None:
    verifier = "~" * 128
    pkce.verify(verifier, pkce.s256(verifier))
