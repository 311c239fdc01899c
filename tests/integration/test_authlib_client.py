"""The authorization-code flow with an independent OAuth 2.0 client: authlib's ``OAuth2Session`` (requests)
against a real ``portcullis serve`` process. authlib builds the authorization URL with PKCE S256 (RFC 7636),
parses the redirect and redeems the code with ``client_secret_basic`` (RFC 6749 2.3.1), refreshes (section
6) and revokes (RFC 7009). The wallet side is scripted with the hosted page's own HTTP calls
(tests/flow/client.py); the browser-driven version is test_openid_client_e2e.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from eth_account import Account

from tests.conftest import sign
from tests.flow.client import page_headers, page_view, siwe_message
from tests.integration.server import ServerProcess, free_port

_WHY = "authlib is not installed: pip install -e '.[test]' (or .venv/bin/pip install authlib)"
requests_client = pytest.importorskip("authlib.integrations.requests_client", reason=_WHY)
authlib_security = pytest.importorskip("authlib.common.security", reason=_WHY)

CLIENT_ID = "authlib-rp"
SECRET = "authlib-client-secret-0123456789-abcdefghijklmnop"
CHAIN_ID = 31337
# A well-known development key (anvil / hardhat account 1): a test wallet, never real funds.
WALLET_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


@pytest.fixture(scope="module")
def redirect_uri() -> str:
    return f"http://127.0.0.1:{free_port()}/cb"  # nothing listens: the redirect is read, not followed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redirect_uri: str) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("authlib")
    clients_file = data_dir / "clients.json"
    client = {
        "client_id": CLIENT_ID,
        "client_name": "authlib RP",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid profile",
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": SECRET,
    }
    clients_file.write_text(json.dumps([client]), encoding="utf-8")
    with ServerProcess(
        data_dir,
        PORTCULLIS_CLIENTS_FILE=str(clients_file),
        PORTCULLIS_DEV_CHAIN="false",
        PORTCULLIS_CHAIN_IDS=json.dumps([CHAIN_ID]),
    ) as running:
        yield running


def discovery(server: ServerProcess) -> dict[str, Any]:
    reply = httpx.get(f"{server.url}/.well-known/openid-configuration", timeout=10)
    assert reply.status_code == 200, reply.text
    metadata: dict[str, Any] = reply.json()
    return metadata


def wallet_approves(authorization_url: str, wallet: Any) -> str:
    """The hosted page's calls, by script, in one cookie-keeping user agent; returns ``redirect_to``."""
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        page = browser.get(authorization_url)
        assert page.status_code == 200, page.text[:500]
        view = page_view(page)
        message = siwe_message(view, wallet.address)
        base = f"{urlsplit(authorization_url).scheme}://{urlsplit(authorization_url).netloc}"
        signed = browser.post(
            base + view["endpoints"]["signin"],
            json={"message": message, "signature": sign(wallet, message)},
            headers=page_headers(view),
        )
        assert signed.status_code == 200, signed.text
        decided = browser.post(
            base + view["endpoints"]["consent"], json={"approve": True}, headers=page_headers(view)
        )
        assert decided.status_code == 200, decided.text
        location: str = decided.json()["redirect_to"]
        return location


def test_authlib_code_flow_refresh_and_revoke(server: ServerProcess, redirect_uri: str) -> None:
    meta = discovery(server)
    assert meta["issuer"] == server.url
    assert "client_secret_basic" in meta["token_endpoint_auth_methods_supported"]
    session = requests_client.OAuth2Session(
        CLIENT_ID,
        SECRET,
        scope="openid",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
        revocation_endpoint_auth_method="client_secret_basic",
    )
    verifier = authlib_security.generate_token(64)
    nonce = authlib_security.generate_token(20)
    url, state = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    sent = parse_qs(urlsplit(url).query)
    assert sent["code_challenge_method"] == ["S256"] and sent["code_challenge"][0] != verifier

    wallet = Account.from_key(WALLET_KEY)
    redirect_to = wallet_approves(url, wallet)
    assert redirect_to.split("?")[0] == redirect_uri
    params = {k: v[0] for k, v in parse_qs(urlsplit(redirect_to).query).items()}
    assert params["iss"] == meta["issuer"] == server.url  # RFC 9207 section 2.4: the client checks it
    assert params["state"] == state

    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=redirect_to, state=state, code_verifier=verifier
    )
    assert token["token_type"] == "Bearer" and token["scope"] == "openid"
    assert token["access_token"] and token["refresh_token"] and token["id_token"]
    keys = jwt.PyJWKClient(meta["jwks_uri"])
    id_token = jwt.decode(
        token["id_token"],
        keys.get_signing_key_from_jwt(token["id_token"]).key,
        algorithms=meta["id_token_signing_alg_values_supported"],
        audience=CLIENT_ID,
        issuer=server.url,
    )
    assert id_token["nonce"] == nonce and id_token["sub"] == f"did:pkh:eip155:{CHAIN_ID}:{wallet.address}"

    userinfo = session.get(meta["userinfo_endpoint"], timeout=10)  # authlib attaches the Bearer token
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == id_token["sub"]

    # a second redemption of the same code fails (single use)
    with pytest.raises(requests_client.OAuthError) as reused:
        session.fetch_token(
            meta["token_endpoint"], authorization_response=redirect_to, state=state, code_verifier=verifier
        )
    assert reused.value.error == "invalid_grant"

    # ...and revoked what the first one issued (RFC 6749 4.1.2): start again for the refresh part
    verifier = authlib_security.generate_token(64)
    url, state = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    redirect_to = wallet_approves(url, wallet)
    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=redirect_to, state=state, code_verifier=verifier
    )

    refreshed = session.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]

    revoked = session.revoke_token(
        meta["revocation_endpoint"], token=refreshed["refresh_token"], token_type_hint="refresh_token"
    )
    assert revoked.status_code == 200, revoked.text
    with pytest.raises(requests_client.OAuthError) as refused:
        session.refresh_token(meta["token_endpoint"], refresh_token=refreshed["refresh_token"])
    assert refused.value.error == "invalid_grant"
    inactive = session.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"])
    assert inactive.status_code == 200 and inactive.json() == {"active": False}
