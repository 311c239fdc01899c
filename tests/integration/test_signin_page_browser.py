"""The hosted sign-in page in a real browser (headless Chromium, injected EIP-1193 test wallet), driven
through a real FAPI 2.0 authorization request by openid-client: a wallet on the wrong chain is told to
switch and signs nothing; a rejected signature can be retried without fetching anything; an RFC 9470
step-up (acr_values wallet+mfa) asks for the TOTP code of a wallet that enrolled one through /mfa, refuses
a wrong code without reaching consent, and issues acr wallet+mfa for the right one.

Passkeys run on a server whose issuer is http://localhost:<port> (a WebAuthn rp id is a domain, and
localhost is a secure context), with Chromium's virtual authenticator: a passkey registered through /mfa
steps up on the page's "Use a passkey" button; a failed user verification shows an error, reaches no
consent and leaves the code field usable; a wallet without a passkey is told so and steps up with a code."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pyotp
import pytest
from eth_account import Account

from app.chain.devchain import DEV_ACCOUNTS
from tests.conftest import sign, siwe_text
from tests.integration.server import ServerProcess
from tests.integration.test_openid_client_e2e import (
    CHAIN_ID,
    MFA_ACR,
    RelyingParty,
    explain,
    needs_rp,
    run_flow,
    serve,
    wallet_subject,
)

# anvil / hardhat development accounts 3, 4 and 5: test wallets, never real funds
CHAIN_WALLET_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"
MFA_WALLET_KEY = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a"
RETRY_WALLET_KEY = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"
# anvil / hardhat development accounts 6, 7 and 8, for the passkey tests
PASSKEY_WALLET_KEY = "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e"
UNVERIFIED_WALLET_KEY = "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356"
NO_PASSKEY_WALLET_KEY = "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97"
WEBAUTHN_AMR = {"siwe", "hwk", "user", "mfa"}  # app.mfa.acr: siwe + AMR_WEBAUTHN + mfa


@pytest.fixture(scope="module")
def relying_party() -> RelyingParty:
    return RelyingParty.create()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, relying_party: RelyingParty) -> Iterator[ServerProcess]:
    with serve(tmp_path_factory.mktemp("page"), relying_party) as running:
        yield running


@pytest.fixture(scope="module")
def dev_chain_server(
    tmp_path_factory: pytest.TempPathFactory, relying_party: RelyingParty
) -> Iterator[ServerProcess]:
    """The embedded development chain with its ComplianceRegistry (wallet #2 seeded as a German
    professional), and the RP registered for the trading and compliance scopes."""
    data_dir = tmp_path_factory.mktemp("registry")
    clients_file = data_dir / "clients.json"
    registration = {**relying_party.registration(), "scope": "openid perps:trade compliance"}
    clients_file.write_text(json.dumps([registration]), encoding="utf-8")
    with ServerProcess(
        data_dir, PORTCULLIS_CLIENTS_FILE=str(clients_file), PORTCULLIS_DEV_CHAIN="true"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def localhost_server(
    tmp_path_factory: pytest.TempPathFactory, relying_party: RelyingParty
) -> Iterator[ServerProcess]:
    """Issuer http://localhost:<port>: WebAuthn rp id ``localhost``, origin the issuer's (app/settings.py)."""
    with serve(tmp_path_factory.mktemp("passkey"), relying_party, public_host="localhost") as running:
        yield running


@needs_rp
def test_wallet_on_the_wrong_chain_is_told_to_switch(
    server: ServerProcess, relying_party: RelyingParty
) -> None:
    result = run_flow(server, relying_party, "wrong_chain", wallet_key=CHAIN_WALLET_KEY, wallet_chain_id=1)
    assert result["ok"], explain(result)
    expected = f"Switch your wallet to Portcullis development chain ({CHAIN_ID}), then try again."
    assert expected in result["error_text"], result["error_text"]
    assert result["consent_visible"] is False
    assert "personal_sign" not in result["wallet_calls"] and result["signed_messages"] == []


@needs_rp
def test_a_rejected_signature_can_be_retried(server: ServerProcess, relying_party: RelyingParty) -> None:
    result = run_flow(server, relying_party, "retry", wallet_key=RETRY_WALLET_KEY)
    assert result["ok"], explain(result)
    assert "You declined the signature request in your wallet" in result["error_text"], result["error_text"]
    assert result["error_visible_at_consent"] is False
    assert result["wallet_calls"].count("personal_sign") == 2 and len(result["signed_messages"]) == 1
    # the retry fetched nothing new: one page load, then only the sign-in call
    page_requests = [r for r in result["requests"] if not r.startswith("GET /cb")]
    assert page_requests == ["GET /authorize", "POST " + signin_path(result)], result["requests"]


def signin_path(result: dict[str, Any]) -> str:
    paths: list[str] = [r.split(" ", 1)[1] for r in result["requests"] if r.startswith("POST ")]
    assert (
        len(paths) == 1 and paths[0].startswith("/authorize/interactions/") and paths[0].endswith("/signin")
    )
    return paths[0]


def wallet_access_token(server: ServerProcess, key: str) -> str:
    """Sign in directly (POST /siwe/nonce, /siwe/verify): a fresh wallet-only session, which may enrol a
    subject's first factor (docs/MFA.md, "recent strong authentication")."""
    wallet = Account.from_key(key)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        offer = http.post("/siwe/nonce").json()
        message = siwe_text(offer, wallet.address, issued_at=datetime.now(UTC), statement="Enrol a factor.")
        signed_in = http.post("/siwe/verify", json={"message": message, "signature": sign(wallet, message)})
        assert signed_in.status_code == 200, signed_in.text
        token: str = signed_in.json()["access_token"]
        return token


def enrol_totp(server: ServerProcess, key: str) -> pyotp.TOTP:
    """Enrol a confirmed TOTP factor with a fresh wallet sign-in (docs/MFA.md)."""
    bearer = {"Authorization": f"Bearer {wallet_access_token(server, key)}"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        enrolment = http.post("/mfa/totp", headers=bearer)
        assert enrolment.status_code == 201, enrolment.text
        totp = pyotp.TOTP(enrolment.json()["secret"])
        confirm = http.post(
            "/mfa/totp/confirm",
            json={"factor_id": enrolment.json()["factor_id"], "code": totp.now()},
            headers=bearer,
        )
        assert confirm.status_code == 200 and confirm.json()["confirmed"], confirm.text
    return totp


def wrong_code(totp: pyotp.TOTP, now: float) -> str:
    """A 6-digit code that no step near ``now`` accepts."""
    near = {totp.at(now + 30 * k) for k in range(-2, 4)}
    return next(c for c in (f"{n:06d}" for n in range(123456, 10**6, 7919)) if c not in near)


@needs_rp
def test_step_up_asks_for_the_second_factor(server: ServerProcess, relying_party: RelyingParty) -> None:
    totp = enrol_totp(server, MFA_WALLET_KEY)
    now = time.time()
    # the confirming code's step is spent (docs/MFA.md); the next step's code is accepted (RFC 6238 5.2)
    codes = [wrong_code(totp, now), totp.at(now + 30)]
    result: dict[str, Any] = run_flow(
        server,
        relying_party,
        "step_up",
        wallet_key=MFA_WALLET_KEY,
        extra_parameters={"acr_values": MFA_ACR},
        codes=codes,
    )
    assert result["ok"], explain(result)
    assert "authenticator" in result["factor_label"]
    wrong, right = result["attempts"]
    assert wrong["outcome"] == "error" and wrong["error_text"], wrong
    assert right["outcome"] == "consent", right
    claims = result["id_token_claims"]
    assert claims["sub"] == wallet_subject(MFA_WALLET_KEY)
    assert claims["acr"] == MFA_ACR
    assert {"siwe", "otp", "mfa"} <= set(claims["amr"])
    assert result["access_token_claims"]["acr"] == MFA_ACR


def factors(server: ServerProcess, access_token: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{server.url}/mfa/factors", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()["factors"]
    return listed


@needs_rp
def test_step_up_with_a_passkey(localhost_server: ServerProcess, relying_party: RelyingParty) -> None:
    server = localhost_server
    token = wallet_access_token(server, PASSKEY_WALLET_KEY)
    result = run_flow(
        server,
        relying_party,
        "step_up",
        wallet_key=PASSKEY_WALLET_KEY,
        extra_parameters={"acr_values": MFA_ACR},
        attempts=[{"passkey": {"user_verified": True}}],
        passkey_bearer=token,
        virtual_authenticator=True,
    )
    assert result["ok"], explain(result)
    # registered for real: the server's options for localhost, the authenticator's credential stored
    registration = result["registration"]
    assert registration["options"]["rp"]["id"] == "localhost"
    assert registration["finish_status"] == 201, registration
    assert registration["factor"]["kind"] == "webauthn" and registration["factor"]["confirmed"], registration
    assert registration["authenticator_credentials"] == 1
    # the passkey is this wallet's only second factor, and the step-up used it
    (factor,) = factors(server, token)
    assert factor["kind"] == "webauthn" and factor["last_used_at"] is not None, factor

    assert result["passkey_offered"] is True
    (attempt,) = result["attempts"]
    assert attempt["outcome"] == "consent", attempt
    assert attempt["requests"][0] == "POST /mfa/webauthn/assertion", attempt
    assert attempt["requests"][1].endswith("/signin") and len(attempt["requests"]) == 2, attempt
    assert not any("Content Security Policy" in line for line in result["console"]), result["console"]
    claims = result["id_token_claims"]
    assert claims["sub"] == wallet_subject(PASSKEY_WALLET_KEY)
    assert claims["iss"] == server.url and server.url.startswith("http://localhost:")
    assert claims["acr"] == MFA_ACR
    assert set(claims["amr"]) >= WEBAUTHN_AMR and "otp" not in claims["amr"], claims["amr"]
    assert result["access_token_claims"]["acr"] == MFA_ACR
    assert set(result["access_token_claims"]["amr"]) >= WEBAUTHN_AMR


@needs_rp
def test_a_passkey_without_user_verification_does_not_step_up(
    localhost_server: ServerProcess, relying_party: RelyingParty
) -> None:
    server = localhost_server
    token = wallet_access_token(server, UNVERIFIED_WALLET_KEY)
    result = run_flow(
        server,
        relying_party,
        "step_up",
        wallet_key=UNVERIFIED_WALLET_KEY,
        extra_parameters={"acr_values": MFA_ACR},
        attempts=[{"passkey": {"user_verified": False}}],
        passkey_bearer=token,
        virtual_authenticator=True,
    )
    assert result["ok"], explain(result)
    assert result["registration"]["finish_status"] == 201, result["registration"]
    (attempt,) = result["attempts"]
    # user verification is required (docs/MFA.md): the authenticator refuses, the page says so and signs
    # nothing in; the code field stays usable
    assert attempt["outcome"] == "error", attempt
    assert "passkey was not used" in attempt["error_text"], attempt
    assert attempt["requests"] == ["POST /mfa/webauthn/assertion"], attempt
    assert attempt["code_field_usable"] and attempt["passkey_button_enabled"], attempt
    assert "id_token_claims" not in result and "callback" not in result
    (factor,) = factors(server, token)
    assert factor["kind"] == "webauthn" and factor["last_used_at"] is None, factor


@needs_rp
def test_a_wallet_without_a_passkey_is_told_and_can_use_a_code(
    localhost_server: ServerProcess, relying_party: RelyingParty
) -> None:
    server = localhost_server
    totp = enrol_totp(server, NO_PASSKEY_WALLET_KEY)
    result = run_flow(
        server,
        relying_party,
        "step_up",
        wallet_key=NO_PASSKEY_WALLET_KEY,
        extra_parameters={"acr_values": MFA_ACR},
        attempts=[{"passkey": {}}, {"code": totp.at(time.time() + 30)}],
        virtual_authenticator=True,
    )
    assert result["ok"], explain(result)
    no_passkey, code = result["attempts"]
    assert no_passkey["outcome"] == "error", no_passkey
    assert "No passkey is registered for this wallet" in no_passkey["error_text"], no_passkey
    assert no_passkey["requests"] == ["POST /mfa/webauthn/assertion"], no_passkey
    assert no_passkey["code_field_usable"], no_passkey
    assert code["outcome"] == "consent", code
    claims = result["id_token_claims"]
    assert claims["acr"] == MFA_ACR and {"siwe", "otp", "mfa"} <= set(claims["amr"])
    assert "hwk" not in claims["amr"]


@needs_rp
@pytest.mark.parametrize("asks_for_the_claim", [False, True])
def test_the_page_lists_the_compliance_facts_the_tokens_carry(
    dev_chain_server: ServerProcess, relying_party: RelyingParty, asks_for_the_claim: bool
) -> None:
    """docs/POLICY.md "Claims": perps:trade alone puts the investor class and the record's end in the access
    token, and nothing in the ID token or at userinfo; the compliance scope adds every fact. The page says
    which, before the signature and at consent, in words."""
    scope = "openid perps:trade compliance" if asks_for_the_claim else "openid perps:trade"
    key = DEV_ACCOUNTS[2].private_key
    result = run_flow(dev_chain_server, relying_party, "allow", wallet_key=key, scope=scope)
    assert result["ok"], explain(result)
    assert result["scope"] == scope
    consent = result["consent_text"]
    assert "The tokens the app receives will carry these facts about you:" in consent, consent
    assert "investor class (retail, professional or eligible counterparty): professional" in consent
    assert "When your compliance record expires: " in consent
    assert "That you have a record in the compliance registry (chain 31337, block " in consent
    assert "If you have a compliance record, the tokens the app receives will carry" in result["signin_text"]
    carried = result["access_token_claims"]["compliance"]
    if asks_for_the_claim:
        assert "Your country of residence: DE" in consent and "(KYC) level: 2" in consent, consent
        assert "Your country of residence" in result["signin_text"]
        assert result["id_token_claims"]["compliance"] == carried and carried["residence"] == "DE"
        assert result["userinfo"]["compliance"] == carried
    else:
        assert "residence" not in consent and "KYC" not in consent, consent
        assert "residence" not in result["signin_text"], result["signin_text"]
        assert "compliance" not in result["id_token_claims"] and "compliance" not in result["userinfo"]
        assert set(carried) == {"source", "chain_id", "block", "investor_class", "valid_until"}, carried
