"""RFC 7591 / RFC 7592 registration core: metadata to a checked client, defaults, refusals with the RFC 7591
section 3.2.2 error codes, the client information response, and the registry's static / dynamic split."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from app.errors import InvalidClientMetadata, InvalidRedirectUri, InvalidRequest
from app.oauth.clients import Client, ClientConfigError, ClientRegistry, hash_client_secret, parse_client
from app.oauth.registration import (
    RegistrationRules,
    build_client,
    changed_fields,
    client_information,
    public_metadata,
    registration_client_uri,
    registration_token_hash,
    replacement_metadata,
    requested_metadata,
    stored_client,
    stored_metadata,
    uses_secret,
)

RULES = RegistrationRules(
    scopes=frozenset({"openid", "perps:trade"}),
    max_access_token_lifetime=900,
    max_refresh_token_lifetime=86400,
)
SECRET = "an-issued-secret-of-sufficient-length-0123"
HASH = hash_client_secret(SECRET)
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def ec_jwk(kid: str = "k1") -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True
    )
    return {**jwk, "kid": kid}


def register(body: dict[str, Any], secret_hash: str | None = HASH) -> Client:
    metadata = requested_metadata(body)
    return build_client(
        metadata,
        client_id="dyn-1",
        client_secret_hash=secret_hash if uses_secret(metadata) else None,
        rules=RULES,
    )


def test_defaults_are_rfc7591_section_2() -> None:
    client = register({"redirect_uris": ["https://dapp.example/cb"]})
    assert client.token_endpoint_auth_method == "client_secret_basic"
    assert client.grant_types == ("authorization_code",)
    assert client.response_types == ("code",)
    assert client.client_secret_hash == HASH


def test_client_credentials_client_gets_no_response_types_by_default() -> None:
    client = register(
        {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}
    )
    assert client.response_types == () and client.redirect_uris == ()


def test_unknown_metadata_is_ignored_and_null_means_absent() -> None:
    metadata = requested_metadata(
        {
            "redirect_uris": ["https://dapp.example/cb"],
            "logo_uri": "https://dapp.example/logo.png",
            "software_statement": "eyJ...",
            "client_secret_hash": HASH,  # our internal field: never taken from a client
            "jwks_uri": None,
        }
    )
    assert set(metadata) == {"redirect_uris", "token_endpoint_auth_method", "grant_types", "response_types"}


@pytest.mark.parametrize(
    "field",
    [
        "client_id",
        "client_secret",
        "registration_access_token",
        "client_id_issued_at",
        "client_secret_expires_at",
    ],
)
def test_server_assigned_fields_are_refused_at_registration(field: str) -> None:
    with pytest.raises(InvalidClientMetadata, match=field):
        requested_metadata({"redirect_uris": ["https://dapp.example/cb"], field: "x"})


@pytest.mark.parametrize(
    "uri",
    [
        "http://dapp.example/cb",  # http only on loopback hosts (RFC 8252 section 7.3)
        "https://dapp.example/cb#fragment",  # RFC 6749 section 3.1.2
        "/relative/cb",
        "custom:/no-host",
    ],
)
def test_bad_redirect_uris_are_invalid_redirect_uri(uri: str) -> None:
    with pytest.raises(InvalidRedirectUri) as caught:
        register({"redirect_uris": [uri]})
    assert caught.value.status == 400 and caught.value.error == "invalid_redirect_uri"


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8765/cb", "http://localhost/cb", "http://[::1]:9000/cb"])
def test_loopback_http_redirect_uris_are_accepted(uri: str) -> None:
    assert register({"redirect_uris": [uri], "token_endpoint_auth_method": "none"}).redirect_uris == (uri,)


def test_bad_post_logout_redirect_uri_is_invalid_redirect_uri() -> None:
    with pytest.raises(InvalidRedirectUri):
        register(
            {"redirect_uris": ["https://dapp.example/cb"], "post_logout_redirect_uris": ["http://x.example/"]}
        )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"response_types": ["token"]}, "response_types"),
        ({"response_types": ["code", "id_token"]}, "response_types"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "token_endpoint_auth_method"),
        ({"token_endpoint_auth_method": "tls_client_auth"}, "token_endpoint_auth_method"),
        ({"grant_types": ["implicit"]}, "grant_types"),
        ({"grant_types": ["password"]}, "grant_types"),
        ({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}, "client_credentials"),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://dapp.example/jwks"}, "jwks"),
        ({"scope": "openid admin"}, "'admin' is not offered"),
        ({"access_token_lifetime": 3600}, "access_token_lifetime"),
        ({"refresh_token_lifetime": 86401}, "refresh_token_lifetime"),
        ({"grant_types": ["client_credentials"], "response_types": ["code"]}, "response_types"),
        ({"grant_types": ["client_credentials", "refresh_token"]}, "refresh_token"),
        ({"grant_types": "authorization_code"}, "grant_types"),
        ({"siwe_domains": ["Dapp.Example"]}, "siwe_domains"),
        (
            {
                "jwks": {"keys": [{**ec_jwk(), "d": "private"}]},
                "token_endpoint_auth_method": "private_key_jwt",
            },
            "jwks",
        ),
        ({"dpop_bound_access_tokens": "yes"}, "dpop_bound_access_tokens"),
    ],
)
def test_what_is_not_implemented_or_inconsistent_is_invalid_client_metadata(
    body: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidClientMetadata, match=fragment) as caught:
        register({"redirect_uris": ["https://dapp.example/cb"], **body})
    assert caught.value.status == 400 and caught.value.error == "invalid_client_metadata"


def test_missing_redirect_uris_for_the_code_grant_is_invalid_client_metadata() -> None:
    with pytest.raises(InvalidClientMetadata, match="redirect_uris"):
        register({})


def test_private_key_jwt_client_with_inline_jwks_has_no_secret() -> None:
    client = register(
        {
            "redirect_uris": ["https://dapp.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [ec_jwk()]},
            "scope": "openid perps:trade",
            "siwe_domains": ["dapp.example"],
            "dpop_bound_access_tokens": True,
            "access_token_lifetime": 300,
        }
    )
    assert client.client_secret_hash is None and client.scope == ("openid", "perps:trade")
    assert client.dpop_bound_access_tokens and client.access_token_lifetime == 300


def test_client_information_response_shows_secret_only_when_given() -> None:
    client = register({"redirect_uris": ["https://dapp.example/cb"], "scope": "openid perps:trade"})
    uri = registration_client_uri("https://auth.example", client.client_id)
    first = client_information(
        client,
        issued_at=NOW,
        registration_client_uri=uri,
        registration_access_token="rat",
        client_secret=SECRET,
    )
    assert first["client_secret"] == SECRET and first["client_secret_expires_at"] == 0
    assert first["client_id"] == "dyn-1" and first["client_id_issued_at"] == int(NOW.timestamp())
    assert first["registration_client_uri"] == "https://auth.example/register/dyn-1"
    assert first["registration_access_token"] == "rat"
    assert first["scope"] == "openid perps:trade"  # RFC 7591 section 2: a space-separated string
    assert "client_secret_hash" not in first and HASH not in str(first)
    later = client_information(
        client, issued_at=NOW, registration_client_uri=uri, registration_access_token="rat"
    )
    assert "client_secret" not in later and later["client_secret_expires_at"] == 0


def test_public_client_information_has_no_secret_fields() -> None:
    client = register({"redirect_uris": ["http://127.0.0.1:8765/cb"], "token_endpoint_auth_method": "none"})
    info = client_information(
        client, issued_at=NOW, registration_client_uri="u", registration_access_token="t"
    )
    assert "client_secret" not in info and "client_secret_expires_at" not in info and "scope" not in info


def test_registration_client_uri_escapes_the_id() -> None:
    assert registration_client_uri("https://a.example", "a b/c") == "https://a.example/register/a%20b%2Fc"


def test_stored_metadata_round_trips_with_the_hash_only() -> None:
    client = register({"redirect_uris": ["https://dapp.example/cb"], "scope": ["openid"]})
    text = stored_metadata(client)
    assert SECRET not in text and HASH in text
    assert stored_client(text) == client
    assert "client_secret_hash" not in public_metadata(client)


def test_token_hash_is_hex_sha256() -> None:
    assert (
        registration_token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


# -- RFC 7592 section 2.2: update requests -------------------------------------------------------------------


def current() -> Client:
    return register({"redirect_uris": ["https://dapp.example/cb"], "scope": "openid"})


def test_update_needs_the_same_client_id() -> None:
    with pytest.raises(InvalidRequest, match="client_id"):
        replacement_metadata({"redirect_uris": ["https://dapp.example/cb"]}, current())
    with pytest.raises(InvalidRequest, match="client_id"):
        replacement_metadata({"client_id": "other", "redirect_uris": ["https://dapp.example/cb"]}, current())


@pytest.mark.parametrize(
    "field",
    [
        "registration_access_token",
        "registration_client_uri",
        "client_secret_expires_at",
        "client_id_issued_at",
    ],
)
def test_update_must_not_carry_server_issued_fields(field: str) -> None:
    with pytest.raises(InvalidRequest, match=field):
        replacement_metadata({"client_id": "dyn-1", field: 0}, current())


def test_update_may_repeat_the_secret_but_not_choose_one() -> None:
    body = {"client_id": "dyn-1", "redirect_uris": ["https://dapp.example/new"]}
    assert replacement_metadata({**body, "client_secret": SECRET}, current())["redirect_uris"] == [
        "https://dapp.example/new"
    ]
    with pytest.raises(InvalidRequest, match="cannot choose"):
        replacement_metadata({**body, "client_secret": "a-secret-the-client-would-like"}, current())


def test_update_replaces_everything_omitted_fields_fall_back_to_defaults() -> None:
    metadata = replacement_metadata(
        {"client_id": "dyn-1", "redirect_uris": ["https://dapp.example/cb"]}, current()
    )
    updated = build_client(metadata, client_id="dyn-1", client_secret_hash=HASH, rules=RULES)
    assert updated.scope == ()  # omitted: deleted from the registration (RFC 7592 section 2.2)
    assert changed_fields(current(), updated) == ["scope"]
    assert changed_fields(current(), updated.model_copy(update={"client_secret_hash": None})) == [
        "client_secret",
        "scope",
    ]


# -- the registry: static clients first ----------------------------------------------------------------------


def static_client(client_id: str = "exchange") -> Client:
    return parse_client(
        {
            "client_id": client_id,
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret": SECRET,
        }
    )


def test_registry_holds_static_and_dynamic_clients() -> None:
    registry = ClientRegistry([static_client()])
    dynamic = current()
    registry.put_dynamic(dynamic)
    assert registry.get("dyn-1") == dynamic and registry.get("exchange") is not None
    assert len(registry) == 2 and registry.ids() == ["exchange", "dyn-1"]
    assert registry.is_static("exchange") and not registry.is_static("dyn-1")
    registry.remove_dynamic("dyn-1")
    assert registry.get("dyn-1") is None and len(registry) == 1


def test_static_ids_cannot_be_taken_or_removed_by_dynamic_clients() -> None:
    static = static_client("dyn-1")
    registry = ClientRegistry([static])
    with pytest.raises(ClientConfigError, match="static"):
        registry.put_dynamic(current())
    registry.remove_dynamic("dyn-1")
    assert registry.get("dyn-1") == static
    assert registry.set_dynamic([current(), static_client("other")]) == ["dyn-1"]
    assert registry.get("dyn-1") == static and registry.get("other") is not None


def test_reload_swaps_the_whole_dynamic_set() -> None:
    registry = ClientRegistry([], dynamic=[current()])
    assert registry.get("dyn-1") is not None
    registry.set_dynamic([static_client("newer")])
    assert registry.get("dyn-1") is None and registry.ids() == ["newer"]
