"""The hosted page's failures in words (app/http/page_text.py): each typed failure names the operator and
the next step, never a bare code; the technical reason is kept apart for the details line."""

from __future__ import annotations

import re

import pytest

from app.http.page_text import FAILURES, browser_texts, classify, explain, wait_in_words

OPERATOR, CLIENT = "Example Exchange", "Perps dApp"


@pytest.mark.parametrize(
    ("error", "reasons", "description", "failure"),
    [
        ("not_eligible", ("no_record",), "", "not_listed"),
        ("not_eligible", ("expired",), "", "kyc_expired"),
        ("not_eligible", ("attestation_expired",), "", "kyc_expired"),
        ("not_eligible", ("sanctioned",), "", "sanctioned"),
        ("not_eligible", ("frozen",), "", "frozen"),
        ("not_eligible", ("revoked",), "", "revoked"),
        ("not_eligible", ("class_below_minimum",), "", "not_eligible"),
        ("not_eligible", ("class_below_minimum", "sanctioned"), "", "sanctioned"),
        ("rate_limited", (), "too many requests", "rate_limited"),
        ("temporarily_unavailable", (), "the chain is down", "unavailable"),
        ("chain_not_allowed", (), "", "wrong_chain"),
        ("access_denied", (), "the policy grants none", "policy_denied"),
        ("invalid_second_factor", (), "", "second_factor"),
        ("nonce_mismatch", (), "", "expired"),
        ("invalid_request", (), "this sign-in has expired; start again", "expired"),
        ("invalid_request", (), "this sign-in has already finished", "expired"),
        ("malformed_signature", (), "the signature is not hex", "other"),
    ],
)
def test_classify(error: str, reasons: tuple[str, ...], description: str, failure: str) -> None:
    assert classify(error, reasons, description) == failure


def test_not_on_the_list_names_the_operator_and_the_next_step() -> None:
    text = explain("not_listed", operator=OPERATOR, client=CLIENT, technical="not_eligible: ... no_record")
    assert text.message == (
        "This wallet is not on Example Exchange's list of verified accounts. "
        "Finish verification with Example Exchange, then try again."
    )
    assert text.back == "Back to Perps dApp"
    assert text.technical == "not_eligible: ... no_record"


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_every_failure_is_words_with_a_next_step_and_no_code(failure: str) -> None:
    text = explain(
        failure,  # type: ignore[arg-type]
        operator=OPERATOR,
        client=CLIENT,
        technical="some_code: detail",
        wait_seconds=42,
        chain_ids=[31337],
        wallet_chain=1,
    )
    assert text.title and text.message.endswith("."), text
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", text.title + " " + text.message), text  # no identifiers
    assert re.search(
        r"try again|contact|go back|enter (a|the) code|check it|switch|renew|finish", text.message, re.I
    )
    assert text.to_json()["failure"] == failure


def test_rate_limited_says_how_long_to_wait() -> None:
    text = explain("rate_limited", operator=OPERATOR, client=CLIENT, technical="", wait_seconds=29.2)
    assert "Wait 30 seconds, then try again." in text.message


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.2, "1 second"),
        (1, "1 second"),
        (45, "45 seconds"),
        (60, "1 minute"),
        (61, "2 minutes"),
        (3600, "1 hour"),
        (3900, "1 hour and 5 minutes"),
        (7200, "2 hours"),
    ],
)
def test_wait_in_words(seconds: float, words: str) -> None:
    assert wait_in_words(seconds) == words


def test_wrong_chain_names_both_chains() -> None:
    text = explain(
        "wrong_chain", operator=OPERATOR, client=CLIENT, technical="", chain_ids=[31337], wallet_chain=1
    )
    assert text.message == (
        "Your wallet is on Ethereum. "
        "Switch your wallet to Portcullis development chain (31337), then try again."
    )
    two = explain(
        "wrong_chain", operator=OPERATOR, client=CLIENT, technical="", chain_ids=[1, 8453], wallet_chain=10
    )
    assert "on OP Mainnet. Switch your wallet to Ethereum or Base," in two.message


def test_browser_texts_leave_the_wallet_chain_for_the_page() -> None:
    texts = browser_texts(operator=OPERATOR, client=CLIENT, chain_ids=[31337])
    assert set(texts) >= {"wrong_chain", "rejected_signature", "no_wallet", "passkey_not_used", "no_passkey"}
    assert "Your wallet is on {wallet_chain}." in texts["wrong_chain"]["message"]
    assert "{wallet_chain_id}" in texts["wrong_chain"]["technical"]
    assert texts["rejected_signature"]["technical"].startswith("EIP-1193 error 4001")
    assert "declined the signature request" in texts["rejected_signature"]["message"]
