"""FAPI 2.0 end to end with a certified relying party: panva's openid-client (Node) pushes the request
(RFC 9126) with PKCE S256 (RFC 7636), authenticates with private_key_jwt (RFC 7523) and binds tokens with
DPoP (RFC 9449); a headless Chromium with an injected EIP-1193 test wallet signs in on the hosted page
(EIP-4361) and consents; the RP redeems the code (checking ``iss``, RFC 9207), reads userinfo, refreshes,
introspects (RFC 7662) and revokes (RFC 7009). ``portcullis serve`` runs as a real process.

The Node side is tests/integration/rp/flow.mjs; it prints one JSON line of facts and this file asserts."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account
from jwt.algorithms import ECAlgorithm

from tests.integration.server import ServerProcess, free_port

RP_DIR = Path(__file__).parent / "rp"
CHROMIUM = Path("/usr/bin/chromium")
CHAIN_ID = 31337
# Well-known development keys (anvil / hardhat accounts 1 and 2): test wallets, never real funds.
WALLET_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
OTHER_WALLET_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
CLIENT_ID = "fapi-rp"
CLIENT_NAME = "Example Trading App"
WALLET_ACR = "urn:portcullis:acr:wallet"
MFA_ACR = "urn:portcullis:acr:wallet+mfa"


def missing_rp_tools() -> str | None:
    """Why the browser end-to-end tests cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not installed (the RP is openid-client on Node)"
    for package in ("openid-client", "playwright-core", "@noble/curves", "@noble/hashes"):
        if not (RP_DIR / "node_modules" / package / "package.json").is_file():
            return f"{package} is not installed: run `make rp-deps` (npm ci --prefix tests/integration/rp)"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    return None


needs_rp = pytest.mark.skipif(missing_rp_tools() is not None, reason=str(missing_rp_tools()))


@dataclass(frozen=True)
class RelyingParty:
    """The registered FAPI client: its id, private signing key (as a JWK, for Node) and redirect URI."""

    client_id: str
    private_jwk: dict[str, Any]
    public_jwk: dict[str, Any]
    redirect_uri: str

    @classmethod
    def create(cls) -> RelyingParty:
        key = ec.generate_private_key(ec.SECP256R1())
        meta = {"kid": "rp-es256-1", "alg": "ES256", "use": "sig"}
        private = {**json.loads(ECAlgorithm.to_jwk(key)), **meta}
        public = {**json.loads(ECAlgorithm.to_jwk(key.public_key())), **meta}
        # nothing listens there: the browser's navigation to it is intercepted by the Node side
        return cls(CLIENT_ID, private, public, f"http://127.0.0.1:{free_port()}/cb")

    def registration(self) -> dict[str, Any]:
        """docs/CLIENTS.md: a confidential FAPI 2.0 client."""
        return {
            "client_id": self.client_id,
            "client_name": CLIENT_NAME,
            "redirect_uris": [self.redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "openid profile",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [self.public_jwk]},
            "dpop_bound_access_tokens": True,
            "require_pushed_authorization_requests": True,
        }


def serve(data_dir: Path, rp: RelyingParty, *, public_host: str = "127.0.0.1") -> ServerProcess:
    """``portcullis serve`` with the RP registered, wallets on chain 31337 and no compliance source;
    ``public_host`` is the host name in its issuer URL (see ServerProcess)."""
    clients_file = data_dir / "clients.json"
    data_dir.mkdir(parents=True, exist_ok=True)
    clients_file.write_text(json.dumps([rp.registration()]), encoding="utf-8")
    return ServerProcess(
        data_dir,
        public_host=public_host,
        PORTCULLIS_CLIENTS_FILE=str(clients_file),
        PORTCULLIS_DEV_CHAIN="false",
        PORTCULLIS_CHAIN_IDS=json.dumps([CHAIN_ID]),
    )


def run_flow(
    server: ServerProcess,
    rp: RelyingParty,
    scenario: str,
    *,
    wallet_key: str = WALLET_KEY,
    wallet_chain_id: int = CHAIN_ID,
    scope: str = "openid",
    extra_parameters: dict[str, str] | None = None,
    codes: list[str] | None = None,
    attempts: list[dict[str, Any]] | None = None,
    passkey_bearer: str | None = None,
    virtual_authenticator: bool = False,
) -> dict[str, Any]:
    """Run one scenario of flow.mjs and return its JSON line (``ok`` false carries ``error``).

    ``step_up`` takes ``codes`` or ``attempts`` (``{"code": ...}`` or ``{"passkey": {"user_verified":
    bool}}``); with ``passkey_bearer`` (an access token of a recent wallet sign-in) it first registers a
    passkey on Chromium's virtual authenticator, which ``virtual_authenticator`` adds to the page."""
    request = {
        "scenario": scenario,
        "issuer": server.url,
        "client_id": rp.client_id,
        "client_jwk": rp.private_jwk,
        "redirect_uri": rp.redirect_uri,
        "scope": scope,
        "extra_parameters": extra_parameters or {},
        "wallet_key": wallet_key,
        "wallet_chain_id": wallet_chain_id,
        "codes": codes or [],
        "attempts": attempts or [],
        "passkey_bearer": passkey_bearer,
        "virtual_authenticator": virtual_authenticator,
        "chromium": str(CHROMIUM),
        "timeout_ms": 20000,
    }
    return run_node("flow.mjs", request)


def run_node(script: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run one of the rp/ scripts with ``request`` on stdin; the JSON line it printed last."""
    done = subprocess.run(
        ["node", script],
        cwd=RP_DIR,
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing (exit {done.returncode}): {done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def explain(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=1)[:6000]


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 section 3.2 for an EC key: the required members in lexicographic order, no whitespace."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def wallet_subject(key: str, chain_id: int = CHAIN_ID) -> str:
    return f"did:pkh:eip155:{chain_id}:{Account.from_key(key).address}"


@pytest.fixture(scope="module")
def relying_party() -> RelyingParty:
    return RelyingParty.create()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, relying_party: RelyingParty) -> Iterator[ServerProcess]:
    with serve(tmp_path_factory.mktemp("fapi"), relying_party) as running:
        yield running


@needs_rp
def test_fapi2_code_flow_with_openid_client(server: ServerProcess, relying_party: RelyingParty) -> None:
    result = run_flow(server, relying_party, "allow")
    assert result["ok"], explain(result)
    subject = wallet_subject(WALLET_KEY)

    # the hosted page: HTML under the CSP the page was written for, and no violation of it
    assert result["page"]["status"] == 200 and result["page"]["content_type"].startswith("text/html")
    csp = result["page"]["csp"] or ""
    for directive in (
        "default-src 'none'",
        "script-src 'nonce-",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ):
        assert directive in csp, csp
    assert result["console"] == [], result["console"]
    # the page loads nothing else: its two calls, then the redirect to the client
    requests = result["requests"]
    assert requests[0] == "GET /authorize" and requests[3:] == ["GET /cb"], requests
    assert [r.rsplit("/", 1)[1] for r in requests[1:3]] == ["signin", "consent"], requests
    # EIP-1193 only, and the message the wallet signed is the EIP-4361 text for the page's values
    assert sorted(result["wallet_calls"]) == ["eth_chainId", "eth_requestAccounts", "personal_sign"]
    (message,) = result["signed_messages"]
    lines = message.split("\n")
    assert lines[0] == f"{server.url} wants you to sign in with your Ethereum account:"
    assert lines[1] == Account.from_key(WALLET_KEY).address  # EIP-55, though the wallet answered lower case
    assert f"URI: {server.url}" in lines and f"Chain ID: {CHAIN_ID}" in lines and "Version: 1" in lines
    # the full EIP-55 address, its hex digits in groups of four for reading (app/chain/names.py)
    address = Account.from_key(WALLET_KEY).address
    grouped = " ".join([address[:6], *(address[i : i + 4] for i in range(6, 42, 4))])
    assert CLIENT_NAME in result["consent_text"] and grouped in result["consent_text"], result["consent_text"]

    # tokens: DPoP-bound to the RP's key, for the wallet's did:pkh
    claims = result["id_token_claims"]
    assert (
        claims["sub"] == subject and claims["iss"] == server.url and claims["aud"] in (CLIENT_ID, [CLIENT_ID])
    )
    assert claims["acr"] == WALLET_ACR and "siwe" in claims["amr"]
    token_answers = [w for w in result["wire"] if w["path"] == "/token"][:2]  # the code, then the refresh
    assert [w["status"] for w in token_answers] == [200, 200], token_answers
    assert all(w["body"]["token_type"] == "DPoP" for w in token_answers), token_answers
    jkt = jwk_thumbprint(result["dpop_public_jwk"])
    assert result["access_token_claims"]["cnf"] == {"jkt": jkt}
    assert result["access_token_claims"]["sub"] == subject
    assert result["userinfo"]["sub"] == subject

    refreshed = result["refreshed"]
    assert refreshed["access_token_differs"] and refreshed["refresh_token_differs"]
    assert refreshed["access_token_claims"]["cnf"] == {"jkt": jkt}

    before, after = result["introspection_before"], result["introspection_after"]
    assert before["active"] is True and before["sub"] == subject and before["client_id"] == CLIENT_ID
    assert before.get("cnf") == {"jkt": jkt}
    assert after == {"active": False}
    assert result["refresh_introspection_after"] == {"active": False}  # the session ended with it

    # one-time things stay one-time, and a DPoP-bound token is no Bearer token
    replay = result["code_replay"]
    assert replay["failed"] and replay["error"] == "invalid_grant" and replay["status"] == 400, replay
    reuse = result["request_uri_reuse"]
    assert reuse["status"] == 400 or "error=" in (reuse["location"] or ""), reuse
    downgrade = result["bearer_downgrade"]
    assert downgrade["status"] == 401, downgrade


@needs_rp
def test_denied_consent_goes_back_with_access_denied(
    server: ServerProcess, relying_party: RelyingParty
) -> None:
    result = run_flow(server, relying_party, "deny", wallet_key=OTHER_WALLET_KEY)
    assert result["ok"], explain(result)
    params = result["callback"]["params"]
    # RFC 6749 4.1.2.1 with RFC 9207: error, the client's state, and the issuer; no code
    assert params.get("error") == "access_denied", params
    assert params.get("state") == result["state"]
    assert params.get("iss") == server.url
    assert "code" not in params
    assert result["callback"]["url"].startswith(relying_party.redirect_uri + "?")


def test_untrusted_client_gets_an_error_page_not_a_redirect(server: ServerProcess) -> None:
    answer = httpx.get(
        f"{server.url}/authorize",
        params={"client_id": "nobody", "request_uri": "urn:ietf:params:oauth:request_uri:nothing"},
        follow_redirects=False,
    )
    # RFC 6749 4.1.2.1: an unknown client or redirect URI must not be redirected to
    assert answer.status_code == 400, answer.text[:500]
    assert answer.headers["content-type"].startswith("text/html")
    assert "location" not in answer.headers
    assert "default-src 'none'" in answer.headers.get("content-security-policy", "")
