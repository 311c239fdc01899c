"""What the hosted sign-in page tells a person when a sign-in cannot go on: the failure in words, what to do
next, and the technical reason kept apart for a details line (the audit trail keeps it too).

Pure: :func:`classify` turns an OAuth error (its code, the compliance reasons it carries, its wait) into a
:data:`Failure`; :func:`explain` words a failure for one operator and one client. Every sentence the page
shows about a failure is here, including the two only the browser sees (a wallet on another chain, a
signature declined in the wallet, EIP-1193 error 4001), which the page fills in from :func:`browser_texts`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from app.chain.names import chain_name

Failure = Literal[
    "not_listed",
    "revoked",
    "kyc_expired",
    "sanctioned",
    "frozen",
    "not_eligible",
    "policy_denied",
    "wrong_chain",
    "rejected_signature",
    "no_wallet",
    "rate_limited",
    "expired",
    "unavailable",
    "second_factor",
    "second_factor_missing",
    "passkey_not_used",
    "no_passkey",
    "passkey_unsupported",
    "other",
]

FAILURES: frozenset[str] = frozenset(get_args(Failure))

# Compliance reasons (app.chain.sources: registry verdicts, sanctions oracle, attestations) by failure.
_REASONS: dict[str, Failure] = {
    "no_record": "not_listed",
    "no_identity": "not_listed",
    "no_attestation": "not_listed",
    "revoked": "revoked",
    "attestation_revoked": "revoked",
    "expired": "kyc_expired",
    "attestation_expired": "kyc_expired",
    "sanctioned": "sanctioned",
    "frozen": "frozen",
}
_PRIORITY: tuple[Failure, ...] = ("sanctioned", "frozen", "revoked", "kyc_expired", "not_listed")
# Errors after which this sign-in request cannot succeed: the person starts again from the app.
_RESTART = frozenset({"nonce_mismatch", "expired_message", "message_too_old", "interaction_expired"})
# Placeholders the page fills in: the name and the id of the chain the wallet is on.
WALLET_CHAIN = "{wallet_chain}"
WALLET_CHAIN_ID = "{wallet_chain_id}"


@dataclass(frozen=True, slots=True)
class PageText:
    """One failure as the page shows it: a heading, what happened and what to do, the Back button's label,
    and the technical reason for the details line."""

    title: str
    message: str
    back: str
    technical: str
    failure: Failure

    def to_json(self) -> dict[str, str]:
        return {
            "failure": self.failure,
            "title": self.title,
            "message": self.message,
            "back": self.back,
            "technical": self.technical,
        }


def classify(error: str, reasons: Iterable[str] = (), description: str = "") -> Failure:
    """The failure an OAuth error stands for. ``reasons``: the compliance reasons of a ``not_eligible``."""
    if error == "not_eligible":
        known = {_REASONS[r] for r in reasons if r in _REASONS}
        # the weightiest first: what the person must do about it differs, and a sanction outranks the rest
        for failure in _PRIORITY:
            if failure in known:
                return failure
        return "not_eligible"
    if error == "rate_limited":
        return "rate_limited"
    if error == "temporarily_unavailable":
        return "unavailable"
    if error == "chain_not_allowed":
        return "wrong_chain"
    if error == "access_denied":
        return "policy_denied"
    if error == "invalid_second_factor":
        return "second_factor"
    if error == "no_factor_enrolled":
        return "no_passkey"
    text = description.lower()
    if error in _RESTART or "expired" in text or "already finished" in text or "has ended" in text:
        return "expired"
    return "other"


def wait_in_words(seconds: float) -> str:
    """A wait as people say it: "1 second", "45 seconds", "2 minutes", "1 hour and 5 minutes"."""
    total = max(1, math.ceil(seconds))
    if total < 60:
        return _count(total, "second")
    minutes = math.ceil(total / 60)
    if minutes < 60:
        return _count(minutes, "minute")
    hours, rest = divmod(minutes, 60)
    return _count(hours, "hour") + (f" and {_count(rest, 'minute')}" if rest else "")


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def chains_in_words(chain_ids: Sequence[int]) -> str:
    names = [chain_name(c) for c in chain_ids]
    if len(names) <= 1:
        return names[0] if names else ""
    return ", ".join(names[:-1]) + " or " + names[-1]


def explain(
    failure: Failure,
    *,
    operator: str,
    client: str,
    technical: str,
    wait_seconds: float | None = None,
    chain_ids: Sequence[int] = (),
    wallet_chain: int | None = None,
    detail: str = "",
) -> PageText:
    """``failure`` in words for a person signing in to ``client`` at ``operator``; ``detail``: the server's
    own sentence, shown for a failure without a sentence of its own."""
    wait = wait_in_words(wait_seconds) if wait_seconds is not None else "a moment"
    on = chain_name(wallet_chain) if wallet_chain is not None else WALLET_CHAIN
    titles_and_messages: dict[Failure, tuple[str, str]] = {
        "not_listed": (
            "This wallet is not verified",
            f"This wallet is not on {operator}'s list of verified accounts. "
            f"Finish verification with {operator}, then try again.",
        ),
        "revoked": (
            "This wallet's verification was withdrawn",
            f"{operator} has withdrawn this wallet's verification. "
            f"Contact {operator} to have it checked again, then try again.",
        ),
        "kyc_expired": (
            "Your identity check has expired",
            f"Your identity check with {operator} is out of date. "
            f"Renew your verification with {operator}, then try again.",
        ),
        "sanctioned": (
            "This wallet cannot be used",
            f"This wallet is on a sanctions list, so {operator} cannot let it sign in to {client}. "
            f"If you think this is a mistake, contact {operator}.",
        ),
        "frozen": (
            "This account is frozen",
            f"{operator} has frozen the account of this wallet, so it cannot sign in for now. "
            f"Contact {operator} to find out why and how to lift it.",
        ),
        "not_eligible": (
            "This wallet does not meet the requirements",
            f"This wallet does not meet what {operator} requires for {client}. "
            f"Contact {operator} to find out what is missing.",
        ),
        "policy_denied": (
            "Nothing of this request can be allowed",
            f"{operator}'s rules allow this wallet none of the access {client} asks for. "
            f"Go back to {client}; {operator} can tell you what your account may do.",
        ),
        "wrong_chain": (
            "Your wallet is on another network",
            f"Your wallet is on {on}. Switch your wallet to {chains_in_words(chain_ids) or 'another chain'}, "
            "then try again.",
        ),
        "rejected_signature": (
            "The signature was declined",
            "You declined the signature request in your wallet, so nothing was shared. "
            f"Sign in again when you are ready, or go back to {client}.",
        ),
        "no_wallet": (
            "No wallet found",
            "No Ethereum wallet was found in this browser. Install or unlock a wallet, then try again.",
        ),
        "rate_limited": (
            "Too many attempts",
            f"There were too many sign-in attempts in a short time. Wait {wait}, then try again.",
        ),
        "expired": (
            "This sign-in request has ended",
            f"This sign-in request has expired or already ended. Go back to {client} and start again.",
        ),
        "unavailable": (
            "Sign-in is unavailable right now",
            f"{operator} cannot check your wallet right now. Wait {wait}, then try again.",
        ),
        "second_factor": (
            "The second factor was not accepted",
            "That code or passkey was not accepted. Check it and try again, or use another factor.",
        ),
        "second_factor_missing": (
            "A second factor is needed",
            "Enter the code from your authenticator app or a recovery code.",
        ),
        # WebAuthn L2 "Authentication Ceremony Privacy": the browser does not say whether a cancel, a
        # timeout, a failed PIN or biometric check or an unknown credential was the cause, nor can we.
        "passkey_not_used": (
            "The passkey was not used",
            "The passkey was not used: the request was cancelled, timed out or not verified. "
            "Try again, or enter a code instead.",
        ),
        "no_passkey": (
            "No passkey for this wallet",
            "No passkey is registered for this wallet. Enter a code instead.",
        ),
        "passkey_unsupported": (
            "Passkeys do not work here",
            "Your browser could not use a passkey here. Enter a code instead.",
        ),
        "other": (
            "The sign-in did not work",
            f"The sign-in did not work{': ' + _sentence(detail) if detail else '.'} "
            f"Try again, or go back to {client}.",
        ),
    }
    title, message = titles_and_messages[failure]
    return PageText(title, message, f"Back to {client}", technical, failure)


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text + "." if text else ""


def browser_texts(*, operator: str, client: str, chain_ids: Sequence[int]) -> dict[str, dict[str, str]]:
    """The failures only the browser sees, worded in advance for the page (``{wallet_chain}`` is left for
    the page to fill in with :func:`app.chain.names.chain_name` of the wallet's chain)."""
    allowed = ", ".join(map(str, chain_ids))
    technical: tuple[tuple[Failure, str], ...] = (
        ("wrong_chain", f"chain_not_allowed: the wallet is on chain {WALLET_CHAIN_ID}, not {allowed}"),
        ("rejected_signature", "EIP-1193 error 4001: the user rejected the request"),
        ("no_wallet", "no EIP-1193 provider (window.ethereum) in this browser"),
        ("second_factor_missing", "no code was entered"),
        ("passkey_not_used", "navigator.credentials.get: NotAllowedError or AbortError"),
        ("no_passkey", "no_factor_enrolled: no WebAuthn credential for this subject"),
        ("passkey_unsupported", "navigator.credentials.get: {error_name}"),
    )
    return {
        failure: explain(
            failure, operator=operator, client=client, technical=reason, chain_ids=chain_ids
        ).to_json()
        for failure, reason in technical
    }
