"""RFC 6454 section 6.2 origin serialisation and a client's browser origins (app/oauth/origins.py)."""

from __future__ import annotations

import pytest

from app.oauth import origins


@pytest.mark.parametrize(
    ("uri", "origin"),
    [
        ("https://dapp.example/cb?x=1", "https://dapp.example"),
        ("HTTPS://Dapp.Example:443/cb", "https://dapp.example"),
        ("https://dapp.example:8443/cb", "https://dapp.example:8443"),
        ("http://127.0.0.1:80/cb", "http://127.0.0.1"),
        ("http://[::1]:5173/cb", "http://[::1]:5173"),
        ("com.example.app:/cb", None),
        ("https://", None),
        ("https://dapp.example:99999/", None),
    ],
)
def test_serialize(uri: str, origin: str | None) -> None:
    assert origins.serialize(uri) == origin


def test_derived_and_explicit_origins() -> None:
    derived = origins.client_origins(
        ["https://dapp.example/cb", "http://127.0.0.1:7777/cb"], ["app.dapp.example", "localhost:5173"], None
    )
    assert derived == {
        "https://dapp.example",
        "http://127.0.0.1:7777",
        "https://app.dapp.example",
        "http://localhost:5173",
    }
    explicit = origins.client_origins(["https://dapp.example/cb"], ["dapp.example"], ["https://web.example"])
    assert explicit == {"https://web.example"}
    assert origins.client_origins(["https://dapp.example/cb"], [], []) == frozenset()


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "null",
        "https://web.example/",
        "https://Web.example",
        "https://web.example:443",
        "http://web.example",
    ],
)
def test_allowed_origin_must_be_a_serialised_https_origin(value: str) -> None:
    with pytest.raises(ValueError, match=r"origin|https"):
        origins.check_allowed_origin(value)


def test_loopback_http_origin_is_allowed() -> None:
    assert origins.check_allowed_origin("http://localhost:5173") == "http://localhost:5173"
