"""Risk signals of one sign-in: pure detectors over what the request and the history show (docs/RISK.md).

Each detector looks at a ``RiskInput`` and returns a ``Finding`` (the signal fired, and why) or None. A
detector knows nothing of weights: ``app.risk.engine`` turns findings into points and a decision. Details
are short ASCII text for the audit entry; they never carry a raw IP address or a device id.

A first-ever sign-in (no successful sign-in of the subject in the log) fires ``new_account`` only:
``new_device`` and ``new_network`` compare against a history there is none of, so they stay silent rather
than count the same newness three times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from app.risk.geo import IpCountry
from app.risk.history import HistorySummary

WalletKind = Literal["eoa", "contract"]

NEW_ACCOUNT: Final = "new_account"
NEW_DEVICE: Final = "new_device"
NEW_NETWORK: Final = "new_network"
VELOCITY_SUBJECT: Final = "velocity_subject"
VELOCITY_NETWORK: Final = "velocity_network"
FAILURES_SUBJECT: Final = "failures_subject"
FAILURES_NETWORK: Final = "failures_network"
CONTRACT_WALLET: Final = "contract_wallet"
GEO_MISMATCH: Final = "geo_mismatch"

# The order signals are evaluated and listed in (decisions and audit entries).
SIGNAL_NAMES: Final = (
    NEW_ACCOUNT,
    NEW_DEVICE,
    NEW_NETWORK,
    VELOCITY_SUBJECT,
    VELOCITY_NETWORK,
    FAILURES_SUBJECT,
    FAILURES_NETWORK,
    CONTRACT_WALLET,
    GEO_MISMATCH,
)


@dataclass(frozen=True, slots=True)
class RiskInput:
    """One sign-in as the risk engine sees it.

    ``ip`` is the client address (for the country lookup only); ``network`` is the key the audit log
    stores for it (``PORTCULLIS_AUDIT_IP``: truncated, full or hashed), compared with the history as is.
    ``device`` is the hash of the client's device cookie (None: the client sent none). ``residence`` is
    the registry's ISO 3166-1 alpha-2 residence (None: no record or no residence).
    """

    subject: str
    ip: str | None
    network: str | None
    device: str | None
    wallet_kind: WalletKind
    residence: str | None
    history: HistorySummary
    now: datetime


@dataclass(frozen=True, slots=True)
class Finding:
    """A signal that fired, before weighting."""

    name: str
    detail: str


@dataclass(frozen=True, slots=True)
class Signal:
    """A signal that fired and the points it added to the score."""

    name: str
    points: int
    detail: str


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def new_account(inp: RiskInput, *, younger_than: timedelta) -> Finding | None:
    """The subject has no successful sign-in in our records, or its first one is recent."""
    first = inp.history.first_seen
    if first is None:
        return Finding(NEW_ACCOUNT, "first sign-in of this subject")
    age = inp.now - first
    if age < younger_than:
        return Finding(
            NEW_ACCOUNT, f"first seen {max(0, _seconds(age))} s ago (under {_seconds(younger_than)} s)"
        )
    return None


def new_device(inp: RiskInput) -> Finding | None:
    """A subject with history signs in from a device it never used (or without a device cookie)."""
    if inp.history.first_seen is None:
        return None
    if inp.device is None:
        return Finding(NEW_DEVICE, "no device cookie")
    if not inp.history.device_known:
        return Finding(NEW_DEVICE, "device not seen for this subject")
    return None


def new_network(inp: RiskInput) -> Finding | None:
    """A subject with history signs in from a network it never used. No network (no client address)
    says nothing either way."""
    if inp.history.first_seen is None or inp.network is None:
        return None
    if not inp.history.network_known:
        return Finding(NEW_NETWORK, "network not seen for this subject")
    return None


def _at_least(name: str, count: int, at: int, what: str, window: timedelta) -> Finding | None:
    if count < at:
        return None
    return Finding(name, f"{count} {what} in the last {_seconds(window)} s (threshold {at})")


def velocity_subject(inp: RiskInput, *, at: int, window: timedelta) -> Finding | None:
    """The subject already signed in ``at`` times or more within the window."""
    return _at_least(
        VELOCITY_SUBJECT, inp.history.successes_by_subject, at, "sign-ins of this subject", window
    )


def velocity_network(inp: RiskInput, *, at: int, window: timedelta) -> Finding | None:
    """The network already saw ``at`` sign-ins or more (any subject) within the window."""
    return _at_least(
        VELOCITY_NETWORK, inp.history.successes_by_network, at, "sign-ins from this network", window
    )


def failures_subject(inp: RiskInput, *, at: int, window: timedelta) -> Finding | None:
    """``at`` or more refused sign-ins named this subject within the window (claimed, not proven)."""
    return _at_least(
        FAILURES_SUBJECT, inp.history.failures_by_subject, at, "refused sign-ins for this subject", window
    )


def failures_network(inp: RiskInput, *, at: int, window: timedelta) -> Finding | None:
    """``at`` or more refused sign-ins came from this network within the window."""
    return _at_least(
        FAILURES_NETWORK, inp.history.failures_by_network, at, "refused sign-ins from this network", window
    )


def contract_wallet(inp: RiskInput) -> Finding | None:
    """The signature was checked by the wallet contract (ERC-1271/ERC-6492), not by an account key: who
    may sign can change without the address changing (owners, modules, session keys)."""
    if inp.wallet_kind == "contract":
        return Finding(CONTRACT_WALLET, "smart-contract wallet (ERC-1271/ERC-6492 signature)")
    return None


def geo_mismatch(inp: RiskInput, geo: IpCountry) -> Finding | None:
    """The client address's country differs from the registry residence. Silent when either is unknown."""
    if inp.ip is None or inp.residence is None:
        return None
    country = geo.country(inp.ip)
    if country is None:
        return None
    residence = inp.residence.upper()[:8]  # it goes into the audit entry: keep it short
    if country.upper() == residence:
        return None
    return Finding(GEO_MISMATCH, f"IP country {country.upper()}, registry residence {residence}")
