"""RFC 8176 ``amr`` values and Portcullis ``acr`` classes; RFC 9470 step-up (``acr_values``, ``max_age``).

A session starts with Sign-In with Ethereum (``amr`` ``siwe``: proof of possession of the wallet key, which
is not an RFC 8176 registered value) and may add a second factor: a TOTP code (``otp``), a WebAuthn
assertion with user verification (``hwk`` plus ``user``) or a recovery code (``otp``: it is a one-time
password; the audit entry says which). Wallet plus a second factor is multi-factor (``mfa``).

Two authentication context classes, ordered: ``urn:portcullis:acr:wallet`` (the wallet alone) below
``urn:portcullis:acr:wallet+mfa`` (wallet and second factor). Pure: the caller passes ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

AMR_SIWE = "siwe"
AMR_OTP = "otp"  # RFC 8176 section 2: one-time password
AMR_HWK = "hwk"  # proof of possession of a hardware-secured key
AMR_SWK = "swk"  # proof of possession of a software-secured key
AMR_USER = "user"  # user presence test
AMR_MFA = "mfa"  # multiple-factor authentication

# What each factor adds to a session's amr.
AMR_TOTP: tuple[str, ...] = (AMR_OTP,)
AMR_WEBAUTHN: tuple[str, ...] = (AMR_HWK, AMR_USER)
AMR_RECOVERY: tuple[str, ...] = (AMR_OTP,)

SECOND_FACTORS = frozenset({AMR_OTP, AMR_HWK, AMR_SWK})
AMR_VALUES_SUPPORTED = (AMR_SIWE, AMR_OTP, AMR_HWK, AMR_USER, AMR_MFA)

ACR_WALLET = "urn:portcullis:acr:wallet"
ACR_WALLET_MFA = "urn:portcullis:acr:wallet+mfa"
ACR_VALUES_SUPPORTED = (ACR_WALLET, ACR_WALLET_MFA)
_LEVEL = {ACR_WALLET: 1, ACR_WALLET_MFA: 2}

# How recent an authentication must be to enrol or remove a factor (docs/MFA.md).
STRONG_AUTH_WINDOW = timedelta(minutes=5)


def combine_amr(*parts: Iterable[str]) -> tuple[str, ...]:
    """The amr of a session made of ``parts`` (e.g. ``("siwe",)`` and a factor's values): each value once,
    in order, with ``mfa`` added when the wallet and a second factor were both used."""
    seen: list[str] = []
    for part in parts:
        for value in part:
            if value not in seen:
                seen.append(value)
    if AMR_SIWE in seen and SECOND_FACTORS.intersection(seen) and AMR_MFA not in seen:
        seen.append(AMR_MFA)
    return tuple(seen)


def acr_for(amr: Iterable[str]) -> str:
    """The acr a session with these amr values reached. Every session starts with SIWE."""
    values = set(amr)
    if AMR_SIWE not in values:
        raise ValueError("no wallet authentication (amr has no 'siwe'): no Portcullis acr applies")
    return ACR_WALLET_MFA if values & SECOND_FACTORS else ACR_WALLET


def _split(acr_values: str | Sequence[str] | None) -> list[str]:
    if acr_values is None:
        return []
    return acr_values.split() if isinstance(acr_values, str) else list(acr_values)


def required_acr(acr_values: str | Sequence[str] | None) -> str | None:
    """The weakest of our classes that satisfies the request, or None if it names none of ours.

    ``acr_values`` (OpenID Connect Core 3.1.2.1, space separated) lists acceptable classes; any one will
    do, and a stronger class satisfies a request for a weaker one. Unknown values are ignored: acr_values
    is a voluntary claim request, and the client checks the ``acr`` it gets.
    """
    known = [v for v in _split(acr_values) if v in _LEVEL]
    return min(known, key=_LEVEL.__getitem__) if known else None


def satisfies(acr: str, acr_values: str | Sequence[str] | None) -> bool:
    """Does a session at ``acr`` meet the request's ``acr_values``?"""
    required = required_acr(acr_values)
    return required is None or _LEVEL.get(acr, 0) >= _LEVEL[required]


def needs_reauthentication(auth_time: datetime, now: datetime, max_age: int | None) -> bool:
    """OpenID Connect Core 3.1.2.1 / RFC 9470 section 4: more than ``max_age`` seconds since auth_time?"""
    if max_age is None:
        return False
    if max_age < 0:
        raise ValueError("max_age must not be negative")
    return (now - auth_time).total_seconds() > max_age


@dataclass(frozen=True, slots=True)
class Unmet:
    """What a session lacks for a request: the RFC 9470 ``insufficient_user_authentication`` parameters."""

    acr_values: tuple[str, ...]
    max_age: int | None


def unmet(
    acr: str,
    auth_time: datetime,
    now: datetime,
    *,
    acr_values: str | Sequence[str] | None,
    max_age: int | None,
) -> Unmet | None:
    """None when the session satisfies both ``acr_values`` and ``max_age``; else what to ask for."""
    weak = not satisfies(acr, acr_values)
    stale = needs_reauthentication(auth_time, now, max_age)
    if not weak and not stale:
        return None
    wanted = tuple(v for v in _split(acr_values) if v in _LEVEL) if weak else ()
    return Unmet(acr_values=wanted, max_age=max_age if stale else None)


def recent_strong_auth(
    amr: Iterable[str],
    auth_time: datetime,
    now: datetime,
    *,
    enrolled: bool,
    window: timedelta = STRONG_AUTH_WINDOW,
) -> bool:
    """May this session enrol or remove a factor? It must be at most ``window`` old and as strong as the
    subject can be: wallet plus a second factor once one is ``enrolled``, the wallet alone before that."""
    values = tuple(amr)
    if AMR_SIWE not in values or now - auth_time > window:
        return False
    return not enrolled or acr_for(values) == ACR_WALLET_MFA
