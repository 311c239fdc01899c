"""RFC 6238 TOTP: enrolment (otpauth URI, confirmed by a first code) and verification, replay refused.

Parameters are the ones every authenticator app supports: HMAC-SHA-1, 6 digits, 30-second steps, and a
160-bit secret (RFC 4226 section 4, R6). A code is accepted for the current step and one step either side
(RFC 6238 section 5.2, clock drift), and only for a step later than the last accepted one: once a code has
been used, it and every earlier code are refused (section 5.2: "MUST NOT accept the second attempt").
Pure: the caller passes ``now`` and the last accepted step; storing the new step atomically is the
store's job (app.mfa.store.FactorStore.update_after_use).
"""

from __future__ import annotations

import base64
import hmac
import re
from datetime import datetime

import pyotp

from app.mfa.errors import InvalidCode, ReplayedCode
from app.mfa.subject import parse_subject

DIGITS = 6
PERIOD = 30
DRIFT_STEPS = 1
SECRET_BYTES = 20

_CODE = re.compile(rf"[0-9]{{{DIGITS}}}")


def step_at(now: datetime) -> int:
    """The RFC 6238 time step T = floor((unix time - T0) / X) with T0 = 0, X = 30 s."""
    return int(now.timestamp()) // PERIOD


def new_secret(key: bytes) -> str:
    """The base32 secret (no padding, as otpauth URIs carry it) for ``key``: 20 random bytes."""
    if len(key) < SECRET_BYTES:
        raise ValueError(f"a TOTP secret needs {SECRET_BYTES} random bytes")
    return base64.b32encode(key[:SECRET_BYTES]).decode().rstrip("=")


def otpauth_uri(secret: str, subject: str, issuer_name: str) -> str:
    """The Key URI (otpauth://totp/...) an authenticator app scans from a QR code.

    The account name is the wallet address and its chain: the same address on another chain is another
    subject, with factors of its own.
    """
    wallet = parse_subject(subject)
    account = f"{wallet.address} (chain {wallet.chain_id})"
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=issuer_name
    )


def begin_enrolment(subject: str, issuer_name: str, *, key: bytes) -> tuple[str, str]:
    """A fresh secret and its otpauth URI, shown to the user once; ``key`` is the random bytes to use."""
    secret = new_secret(key)
    return secret, otpauth_uri(secret, subject, issuer_name)


def normalise_code(code: str) -> str:
    """The six digits of ``code`` (users paste ``123 456``); InvalidCode if it is not a code at all."""
    digits = code.replace(" ", "").replace("-", "")
    if not _CODE.fullmatch(digits):
        raise InvalidCode(f"a TOTP code is {DIGITS} digits")
    return digits


def verify(secret: str, code: str, now: datetime, last_step: int | None) -> int:
    """The time step ``code`` belongs to, if it is valid at ``now`` and later than ``last_step``.

    Raises InvalidCode when no step in the window matches, ReplayedCode when only already-used steps do.
    """
    digits = normalise_code(code)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = step_at(now)
    replayed = False
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), digits):
            if last_step is not None and step <= last_step:
                replayed = True
                continue
            return step
    if replayed:
        raise ReplayedCode("this code was used already; wait for the next one")
    raise InvalidCode("the code does not match")


def confirm(secret: str, code: str, now: datetime) -> int:
    """Enrolment's first code: proves the app holds the secret. Returns its step (stored as last_step)."""
    return verify(secret, code, now, last_step=None)
