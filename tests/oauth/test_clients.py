"""RFC 7591 client metadata: validation, loading, secret hashing and exact redirect URI matching."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from app.oauth.clients import (
    Client,
    ClientConfigError,
    hash_client_secret,
    load_clients,
    parse_client,
    redirect_uri_allowed,
    verify_client_secret,
)

SECRET = "s3cret-value-that-is-long-enough"


def ec_jwk(kid: str = "k1") -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True
    )
    return {**jwk, "kid": kid}


def web_client(**extra: Any) -> dict[str, Any]:
    return {
        "client_id": "web",
        "redirect_uris": ["https://app.example.com/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": SECRET,
        **extra,
    }


def write(tmp_path: Path, clients: Any) -> Path:
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(clients))
    return path


def test_load_clients_hashes_clear_secret_and_never_keeps_it(tmp_path: Path) -> None:
    registry = load_clients(write(tmp_path, [web_client(scope="openid trade")]))
    client = registry.get("web")
    assert client is not None and registry.get("other") is None
    assert client.scope == ("openid", "trade")
    assert client.client_secret_hash is not None and client.client_secret_hash.startswith("scrypt$")
    assert SECRET not in client.model_dump_json() and SECRET not in repr(client)
    assert "client_secret" not in Client.model_fields
    assert verify_client_secret(SECRET, client.client_secret_hash)
    assert not verify_client_secret(SECRET + "x", client.client_secret_hash)


def test_hash_is_salted() -> None:
    assert hash_client_secret(SECRET) != hash_client_secret(SECRET)


def test_client_secret_hash_accepted_as_given(tmp_path: Path) -> None:
    hashed = hash_client_secret(SECRET)
    item = web_client(client_secret_hash=hashed)
    del item["client_secret"]
    client = load_clients(write(tmp_path, [item])).get("web")
    assert client is not None and client.client_secret_hash == hashed


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"redirect_uris": ["http://app.example.com/cb"]}, "redirect_uris: "),
        ({"redirect_uris": ["https://app.example.com/cb#frag"]}, "redirect_uris: "),
        ({"redirect_uris": ["/cb"]}, "redirect_uris: "),
        ({"post_logout_redirect_uris": ["ftp://x.example/"]}, "post_logout_redirect_uris: "),
        ({"grant_types": ["password"]}, "grant_types.0"),
        ({"response_types": ["token"]}, "response_types.0"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "token_endpoint_auth_method"),
        ({"scope": 'openid bad"scope'}, "scope"),
        ({"access_token_lifetime": 0}, "access_token_lifetime"),
        ({"dpop_bound_access_tokens": "yes"}, "dpop_bound_access_tokens"),
        ({"siwe_domains": ["https://app.example.com"]}, "siwe_domains"),
        ({"client_secret_hash": "plain"}, "client_secret"),
        ({"client_secret": "short"}, "client_secret"),
        ({"colour": "blue"}, "colour"),
        ({"redirect_uris": []}, "redirect_uris"),
    ],
)
def test_load_errors_name_client_and_field(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    with pytest.raises(ClientConfigError) as info:
        load_clients(write(tmp_path, [web_client(**change)]))
    assert "client 'web'" in str(info.value)
    assert field in str(info.value)
    assert SECRET not in str(info.value)


def test_none_forbids_client_credentials_and_secrets() -> None:
    public = {
        "client_id": "spa",
        "redirect_uris": ["https://spa.example/cb"],
        "token_endpoint_auth_method": "none",
    }
    assert parse_client(public).token_endpoint_auth_method == "none"
    with pytest.raises(ClientConfigError, match="grant_types: client_credentials"):
        parse_client({**public, "grant_types": ["authorization_code", "client_credentials"]})
    with pytest.raises(ClientConfigError, match="client_secret_hash"):
        parse_client({**public, "client_secret": SECRET})


def test_private_key_jwt_needs_public_jwks_or_jwks_uri() -> None:
    base = {
        "client_id": "svc",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
    }
    assert parse_client({**base, "jwks": {"keys": [ec_jwk()]}}).jwks is not None
    with pytest.raises(ClientConfigError, match="jwks"):
        parse_client(base)
    assert parse_client({**base, "jwks_uri": "https://svc.example/jwks"}).jwks_uri is not None
    with pytest.raises(ClientConfigError, match="not both"):
        parse_client({**base, "jwks_uri": "https://svc.example/jwks", "jwks": {"keys": [ec_jwk()]}})
    private = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
    with pytest.raises(ClientConfigError, match="private"):
        parse_client({**base, "jwks": {"keys": [{**private, "kid": "p"}]}})
    with pytest.raises(ClientConfigError, match="unique"):
        parse_client({**base, "jwks": {"keys": [ec_jwk("a"), ec_jwk("a")]}})
    with pytest.raises(ClientConfigError, match="kid"):
        parse_client({**base, "jwks": {"keys": [{k: v for k, v in ec_jwk().items() if k != "kid"}]}})
    okp = OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key(), as_dict=True)
    assert parse_client({**base, "jwks": {"keys": [{**okp, "kid": "ed"}]}}).jwks is not None


@pytest.mark.parametrize(
    "uri",
    [
        "http://svc.example/jwks",
        "https://svc.example/jwks#frag",
        "https://user@svc.example/jwks",
        "ftp://svc.example/jwks",
        "/jwks",
        "https:///jwks",
    ],
)
def test_jwks_uri_must_be_https(uri: str) -> None:
    client = {
        "client_id": "svc",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
    }
    with pytest.raises(ClientConfigError, match="jwks_uri: must be an https URI"):
        parse_client({**client, "jwks_uri": uri})
    # http on a loopback host passes here; the fetcher refuses it outside development mode.
    assert parse_client({**client, "jwks_uri": "http://127.0.0.1:8080/jwks"}).jwks_uri


def test_load_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ClientConfigError, match="list"):
        load_clients(write(tmp_path, {"client_id": "web"}))
    with pytest.raises(ClientConfigError, match="client #1"):
        load_clients(write(tmp_path, [web_client(), "nope"]))
    with pytest.raises(ClientConfigError, match="duplicate"):
        load_clients(write(tmp_path, [web_client(), web_client()]))
    with pytest.raises(ClientConfigError, match="cannot read"):
        load_clients(tmp_path / "missing.json")


def test_loopback_http_allowed_for_native_clients() -> None:
    client = parse_client(
        web_client(redirect_uris=["http://127.0.0.1:8765/cb", "http://localhost/cb", "http://[::1]:9/cb"])
    )
    assert len(client.redirect_uris) == 3


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/cb/",
        "https://app.example.com/cb?x=1",
        "https://APP.example.com/cb",
        "https://app.example.com/CB",
        "https://app.example.com:443/cb",
        "https://app.example.com/cb/../cb",
        "https://app.example.com/c%62",
        "https://app.example.com/cb#",
    ],
)
def test_redirect_uri_exact_match_only(uri: str) -> None:
    client = parse_client(
        web_client(redirect_uris=["https://app.example.com/cb", "https://app.example.com/q?a=1"])
    )
    assert redirect_uri_allowed(client, "https://app.example.com/cb")
    assert redirect_uri_allowed(client, "https://app.example.com/q?a=1")
    assert not redirect_uri_allowed(client, uri)
    assert not redirect_uri_allowed(client, "https://app.example.com/q?a=1&b=2")
