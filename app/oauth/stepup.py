"""Second factors at sign-in and RFC 9470 step-up.

``/siwe/verify`` may carry a ``second_factor`` (a TOTP code, a WebAuthn assertion or a recovery code); a
proven factor makes the session ``urn:portcullis:acr:wallet+mfa`` with ``amr`` = siwe + the factor's
methods (RFC 8176). When the client asks for ``acr_values`` or ``max_age`` the session cannot meet, the
answer is ``insufficient_user_authentication`` with what would do, and nothing is issued.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.audit.events import RequestMeta
from app.errors import InsufficientUserAuthentication, InvalidRequest, SignInRejected
from app.mfa import acr
from app.mfa.errors import MfaError, StrongAuthenticationRequired, VerificationFailed
from app.mfa.service import Verification
from app.oauth.provider import Provider

FACTOR_TYPES = ("totp", "webauthn", "recovery")


def oauth_error(exc: MfaError) -> Exception:
    """An app.mfa refusal as the OAuth error the HTTP face renders."""
    if isinstance(exc, StrongAuthenticationRequired):
        return InsufficientUserAuthentication(exc.description, acr_values=exc.acr_values, max_age=exc.max_age)
    return SignInRejected(exc.code, exc.status, exc.description)


async def prove_second_factor(
    p: Provider, subject: str, factor: Any, meta: RequestMeta
) -> Verification | None:
    if factor is None:
        return None
    if not isinstance(factor, dict) or factor.get("type") not in FACTOR_TYPES:
        raise InvalidRequest(f"second_factor must be an object with type one of {', '.join(FACTOR_TYPES)}")
    kind = factor["type"]
    address = subject.rsplit(":", 1)[-1]
    if await p.guard.address_locked(address):
        # Answer exactly as a wrong factor does: a lock must not tell an attacker anything.
        raise _not_accepted()
    try:
        if kind == "totp":
            return await p.mfa.verify_totp(subject, _text(factor, "code"), meta=meta)
        if kind == "recovery":
            return await p.mfa.use_recovery_code(subject, _text(factor, "code"), meta=meta)
        credential = factor.get("credential")
        if not isinstance(credential, dict | str):
            raise InvalidRequest("second_factor.credential must be the PublicKeyCredential JSON")
        return await p.mfa.finish_webauthn_assertion(subject, credential, meta=meta)
    except VerificationFailed:
        # The precise reason (invalid, replayed, counter regression, ...) is in the audit entry the
        # service wrote; the client hears one answer, so failures and locks cannot be told apart.
        await p.guard.failed(ip=meta.ip, address=address)
        raise _not_accepted() from None
    except MfaError as exc:
        raise oauth_error(exc) from None


def _not_accepted() -> SignInRejected:
    return SignInRejected("invalid_second_factor", 401, "the second factor was not accepted")


def _text(factor: dict[str, Any], name: str) -> str:
    value = factor.get(name)
    if not isinstance(value, str) or not value or len(value) > 64:
        raise InvalidRequest(f"second_factor.{name} must be a short string")
    return value


def require(
    session_acr: str, auth_time: datetime, now: datetime, acr_values: str | None, max_age: int | None
) -> None:
    """RFC 9470: refuse when the session does not meet the requested acr_values / max_age."""
    missing = acr.unmet(session_acr, auth_time, now, acr_values=acr_values, max_age=max_age)
    if missing is not None:
        raise InsufficientUserAuthentication(
            "a stronger or more recent authentication is required",
            acr_values=missing.acr_values,
            max_age=missing.max_age,
        )
