"""The hosted sign-in and consent page as a person meets it (issue 17), in a real headless Chromium at a
360 px wide viewport with an injected EIP-1193 test wallet, driven through a real FAPI 2.0 authorization
request (openid-client, PAR) against ``portcullis serve`` on a real anvil with a ComplianceRegistry and a
sanctions oracle:

- each refusal is a screen in words with the next step, names the operator, keeps the technical reason in a
  details line, and its "Back to <client>" button lands at the client's redirect URI with
  error=access_denied, its state and iss (RFC 9207): a wallet not on the registry, an expired KYC record, a
  sanctioned wallet, a frozen one, a wallet on another chain, a signature declined in the wallet (EIP-1193
  4001) and a rate-limited sign-in (with the wait in words);
- consent shows the client's name and domain, the chain by name, the grouped EIP-55 address, each detail in
  words and where the policy narrowed it (asked 50x leverage, granted 20x, and why), how long access lasts;
  it is completed with the keyboard alone;
- no screen scrolls sideways at 360 px, and each screen (sign-in, consent, every error, the step-up) is
  saved as a PNG screenshot under the test's tmp_path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from tests.anvil import Anvil, find_anvil_binary, send
from tests.chain.helpers import World, deploy_world, set_record
from tests.integration.server import ServerProcess
from tests.integration.test_openid_client_e2e import (
    CHAIN_ID,
    CHROMIUM,
    CLIENT_NAME,
    MFA_ACR,
    RelyingParty,
    explain,
    needs_rp,
    run_node,
)

OPERATOR = "Example Exchange"
# Ports of this test's own processes (its range is 18100-18199).
ANVIL_PORT, REGISTRY_SERVER_PORT, LIMITED_SERVER_PORT = 18150, 18151, 18152
PROFESSIONAL = 2
FROZEN_REASON = b"CASE-17".ljust(32, b"\x00")
TRADE = {
    "type": "derivatives_trade",
    "actions": ["place_order", "cancel_order"],
    "instruments": ["ETH-PERP"],
    "order_types": ["market", "limit"],
    "max_leverage": 50,
}
PNG = b"\x89PNG\r\n\x1a\n"

needs_anvil = pytest.mark.skipif(find_anvil_binary() is None, reason="anvil (Foundry) is not installed")


@pytest.fixture(scope="module")
def relying_party() -> RelyingParty:
    return RelyingParty.create()


@pytest.fixture(scope="module")
def evm() -> Iterator[Anvil]:
    if find_anvil_binary() is None:
        pytest.skip("anvil (Foundry) is not installed")
    with Anvil(port=ANVIL_PORT) as chain:
        yield chain


@pytest.fixture(scope="module")
def world(evm: Anvil) -> World:
    return deploy_world(evm)


def registration(rp: RelyingParty) -> dict[str, Any]:
    return {**rp.registration(), "scope": "openid perps:trade compliance"}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, relying_party: RelyingParty, evm: Anvil, world: World
) -> Iterator[ServerProcess]:
    """``portcullis serve`` gated by the registry and the sanctions oracle on anvil (no cache: each sign-in
    reads the chain as it is), the RP registered for the trading and compliance scopes."""
    data_dir = tmp_path_factory.mktemp("hosted")
    (data_dir / "clients.json").write_text(json.dumps([registration(relying_party)]), encoding="utf-8")
    chains = [
        {
            "chain_id": CHAIN_ID,
            "rpc_urls": [evm.url],
            "registry": world.registry.address,
            "multicall": world.multicall.address,
            "sanctions_oracle": world.sanctions.address,
            "cache_seconds": 0,
        }
    ]
    with ServerProcess(
        data_dir,
        port=REGISTRY_SERVER_PORT,
        PORTCULLIS_CLIENTS_FILE=str(data_dir / "clients.json"),
        PORTCULLIS_DEV_CHAIN="false",
        PORTCULLIS_CHAIN_IDS=json.dumps([CHAIN_ID]),
        PORTCULLIS_CHAINS=json.dumps(chains),
        PORTCULLIS_OPERATOR_NAME=OPERATOR,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def limited_server(
    tmp_path_factory: pytest.TempPathFactory, relying_party: RelyingParty
) -> Iterator[ServerProcess]:
    """No compliance source, default rate limits: its own process, so spending its verify budget leaves
    the other tests alone."""
    data_dir = tmp_path_factory.mktemp("limited")
    (data_dir / "clients.json").write_text(json.dumps([relying_party.registration()]), encoding="utf-8")
    with ServerProcess(
        data_dir,
        port=LIMITED_SERVER_PORT,
        PORTCULLIS_CLIENTS_FILE=str(data_dir / "clients.json"),
        PORTCULLIS_DEV_CHAIN="false",
        PORTCULLIS_CHAIN_IDS=json.dumps([CHAIN_ID]),
        PORTCULLIS_OPERATOR_NAME=OPERATOR,
    ) as running:
        yield running


def new_wallet() -> Any:
    return Account.create()


def run_page(
    server: ServerProcess,
    rp: RelyingParty,
    scenario: str,
    shots: Path,
    *,
    wallet: Any,
    name: str = "",
    scope: str = "openid",
    wallet_chain_id: int = CHAIN_ID,
    extra_parameters: dict[str, str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """One scenario of hosted_page.mjs; its JSON line (``ok`` false carries ``error``)."""
    request = {
        "scenario": scenario,
        "name": name,
        "issuer": server.url,
        "client_id": rp.client_id,
        "client_jwk": rp.private_jwk,
        "redirect_uri": rp.redirect_uri,
        "scope": scope,
        "extra_parameters": extra_parameters or {},
        "wallet_key": "0x" + bytes(wallet.key).hex(),
        "wallet_chain_id": wallet_chain_id,
        "chromium": str(CHROMIUM),
        "screenshot_dir": str(shots),
        "width": 360,
        "timeout_ms": 20000,
        **options,
    }
    result = run_node("hosted_page.mjs", request)
    assert result["ok"], explain(result)
    return result


def assert_screens(result: dict[str, Any], *names: str) -> None:
    """Each screen was saved as a non-empty PNG and does not scroll sideways at 360 px."""
    for name in names:
        shown = result["screens"][name]
        data = Path(shown["screenshot"]).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000, name
        assert shown["inner_width"] == 360, shown
        assert shown["scroll_width"] <= 360 and shown["body_scroll_width"] <= 360, (name, shown)


def assert_back_to_client(result: dict[str, Any], server: ServerProcess, rp: RelyingParty) -> None:
    """The dApp is not left waiting: the redirect carries access_denied, its state and iss (RFC 9207)."""
    callback = result["callback"]
    assert callback["url"].startswith(rp.redirect_uri), callback
    params = callback["params"]
    assert params["error"] == "access_denied", params
    assert params["state"] == result["state"] and params["iss"] == server.url, params
    assert "code" not in params


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder


def grant(evm: Anvil, world: World, wallet: Any, **overrides: Any) -> None:
    set_record(evm, world, wallet.address, investorClass=PROFESSIONAL, **overrides)


@needs_rp
@needs_anvil
def test_consent_with_a_narrowed_detail_by_keyboard_alone(
    server: ServerProcess, relying_party: RelyingParty, evm: Anvil, world: World, shots: Path
) -> None:
    wallet = new_wallet()
    grant(evm, world, wallet)
    result = run_page(
        server,
        relying_party,
        "consent_keyboard",
        shots,
        wallet=wallet,
        scope="openid perps:trade",
        extra_parameters={"authorization_details": json.dumps([TRADE])},
    )
    assert_screens(result, "signin", "consent_narrowed")
    assert result["console"] == [], result["console"]
    # the first screen: the operator, the client's name and domain, the chain by name
    assert result["operator_line"] == f"Run by {OPERATOR}, through Portcullis"
    signin = result["signin_text"]
    assert f"{CLIENT_NAME} asks you to sign in" in signin and "(127.0.0.1:" in signin, signin
    assert "Portcullis development chain (31337)" in signin, signin
    assert "Place orders and cancel orders on ETH-PERP, with market and limit orders" in signin, signin
    # keyboard: every stop on the way has a visible focus ring; focus lands on the consent heading
    assert all(s["outline"] != "none" for s in result["focus_to_connect"] if s["tag"] == "BUTTON")
    assert result["focused_at_consent"] == "consent-heading"
    consent = result["consent_text"]
    address = wallet.address
    grouped = " ".join([address[:6], *(address[i : i + 4] for i in range(6, 42, 4))])
    assert result["account_text"] == grouped, result["account_text"]
    assert "Portcullis development chain (31337)" in consent
    assert "Asked for 50x leverage; granted 20x leverage. Why: Professional client cap." in consent, consent
    assert "at most 20x leverage" in consent
    assert "Each access token lasts 15 minutes; the app may renew access until " in consent, consent
    # the tokens carry what consent said: the narrowed detail
    (detail,) = result["access_token_claims"]["authorization_details"]
    assert detail["max_leverage"] == 20


ERRORS = [
    # (name, how the wallet is set up, what the screen must say)
    (
        "not_listed",
        "none",
        f"This wallet is not on {OPERATOR}'s list of verified accounts. "
        f"Finish verification with {OPERATOR}, then try again.",
        "no_record",
    ),
    (
        "kyc_expired",
        "expired",
        f"Your identity check with {OPERATOR} is out of date. "
        f"Renew your verification with {OPERATOR}, then try again.",
        "expired",
    ),
    (
        "sanctioned",
        "sanctioned",
        f"This wallet is on a sanctions list, so {OPERATOR} cannot let it sign in to {CLIENT_NAME}.",
        "sanctioned",
    ),
    ("frozen", "frozen", f"{OPERATOR} has frozen the account of this wallet", "frozen"),
]


@needs_rp
@needs_anvil
@pytest.mark.parametrize(("name", "setup", "words", "reason"), ERRORS)
def test_compliance_refusals_in_words_and_back_to_the_client(
    server: ServerProcess,
    relying_party: RelyingParty,
    evm: Anvil,
    world: World,
    shots: Path,
    name: str,
    setup: str,
    words: str,
    reason: str,
) -> None:
    wallet = new_wallet()
    if setup == "expired":
        # valid for a minute of chain time, then the chain moves past it
        grant(evm, world, wallet, validUntil=max(evm.timestamp(), int(time.time())) + 60)
        evm.increase_time(120)
    elif setup == "sanctioned":
        grant(evm, world, wallet)
        send(world.sanctions.functions.addToSanctionsList([wallet.address]), world.agent)
    elif setup == "frozen":
        grant(evm, world, wallet)
        send(world.registry.functions.freeze(wallet.address, FROZEN_REASON), world.revoker)
    result = run_page(server, relying_party, "error", shots, wallet=wallet, name=name)
    shown = result["failure"]
    assert words in shown["message"], shown
    assert shown["back"] == f"Back to {CLIENT_NAME}"
    assert shown["technical"].startswith("not_eligible: not eligible on chain 31337"), shown
    assert shown["technical"].endswith(reason), shown
    assert "not_eligible" not in shown["title"] + shown["message"]  # no bare code in the words
    assert shown["focused"] == "failure-title"
    assert result["consent_visible"] is False
    assert_screens(result, name)
    assert_back_to_client(result, server, relying_party)


WALLET_ERRORS = [
    # (name, the wallet's chain and how many signatures it declines, the words, the technical line)
    (
        "wrong_chain",
        {"wallet_chain_id": 1},
        "Your wallet is on Ethereum. "
        "Switch your wallet to Portcullis development chain (31337), then try again.",
        "chain_not_allowed: the wallet is on chain 1, not 31337",
    ),
    (
        "rejected_signature",
        {"rejections": 1},
        "You declined the signature request in your wallet, so nothing was shared. "
        f"Sign in again when you are ready, or go back to {CLIENT_NAME}.",
        "EIP-1193 error 4001: the user rejected the request",
    ),
]


@needs_rp
@needs_anvil
@pytest.mark.parametrize(("name", "options", "words", "technical"), WALLET_ERRORS)
def test_wallet_refusals_in_words_and_back(
    server: ServerProcess,
    relying_party: RelyingParty,
    evm: Anvil,
    world: World,
    shots: Path,
    name: str,
    options: dict[str, Any],
    words: str,
    technical: str,
) -> None:
    """What only the browser sees (another chain, EIP-1193 4001): nothing reaches the sign-in call."""
    wallet = new_wallet()
    grant(evm, world, wallet)
    result = run_page(server, relying_party, "error", shots, wallet=wallet, name=name, **options)
    shown = result["failure"]
    assert shown["message"] == words and shown["technical"] == technical, shown
    assert shown["focused"] == "failure-title"
    assert_screens(result, name)
    assert_back_to_client(result, server, relying_party)
    assert not any(r.endswith("/signin") for r in result["requests"]), result["requests"]


@needs_rp
@needs_anvil
def test_the_step_up_screen(
    server: ServerProcess, relying_party: RelyingParty, evm: Anvil, world: World, shots: Path
) -> None:
    wallet = new_wallet()
    grant(evm, world, wallet)
    result = run_page(
        server, relying_party, "step_up", shots, wallet=wallet, extra_parameters={"acr_values": MFA_ACR}
    )
    assert result["focused"] == "second-factor"
    assert "Confirm with a second factor" in result["screens"]["step_up"]["text"]
    assert_screens(result, "step_up")


@needs_rp
def test_rate_limited_says_how_long_to_wait_and_goes_back(
    limited_server: ServerProcess, relying_party: RelyingParty, shots: Path
) -> None:
    result = run_page(
        limited_server,
        relying_party,
        "error",
        shots,
        wallet=new_wallet(),
        name="rate_limited",
        exhaust_verify=20,
        signin_screenshot=True,
    )
    assert 429 in result["exhaust_statuses"], result["exhaust_statuses"]
    shown = result["failure"]
    assert shown["title"] == "Too many attempts"
    assert "There were too many sign-in attempts in a short time. Wait " in shown["message"], shown
    assert " second" in shown["message"] and shown["message"].endswith(", then try again."), shown
    assert shown["technical"].startswith("rate_limited: "), shown
    assert_screens(result, "signin", "rate_limited")
    assert_back_to_client(result, limited_server, relying_party)
