"""Second-factor failures, one class per stable machine code.

Each class carries the ``code`` the HTTP face renders as the OAuth ``error`` value and the HTTP ``status``.
Every subclass of :class:`VerificationFailed` is a failed attempt: callers feed those to the rate limiter
(``app.risk``). The ``description`` is safe to show a client: it never echoes a code, secret or key.
"""

from __future__ import annotations

from collections.abc import Sequence


class MfaError(Exception):
    """Base class: a second-factor operation was refused."""

    code: str = "mfa_error"
    status: int = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class StrongAuthenticationRequired(MfaError):
    """RFC 9470 section 3: enrolling or removing a factor needs a recent strong authentication first.

    ``acr_values`` and ``max_age`` say what would do, for the ``insufficient_user_authentication`` answer.
    """

    code = "insufficient_user_authentication"
    status = 401

    def __init__(
        self, description: str, *, acr_values: Sequence[str] = (), max_age: int | None = None
    ) -> None:
        super().__init__(description)
        self.acr_values = tuple(acr_values)
        self.max_age = max_age


class InvalidSubject(MfaError, ValueError):
    """The subject named is not a ``did:pkh:eip155`` account (the only kind second factors bind to).

    A ValueError too, as it was before it had a class: callers that catch ValueError keep working.
    """

    code = "invalid_request"


class UnknownFactor(MfaError):
    """No factor with that id belongs to the subject (or it is not in the state the operation needs)."""

    code = "unknown_factor"
    status = 404


class NoFactorEnrolled(MfaError):
    """The subject has no confirmed factor of the kind asked for."""

    code = "no_factor_enrolled"


class EnrolmentExpired(MfaError):
    """A TOTP enrolment was not confirmed in time; start again (the secret shown is void)."""

    code = "enrolment_expired"


class TooManyFactors(MfaError):
    """The subject has as many factors (pending enrolments included) as a subject may have."""

    code = "too_many_factors"
    status = 409


class SecretUnavailable(RuntimeError):
    """A stored TOTP secret cannot be decrypted: the server secret is not the one it was sealed with."""


class VerificationFailed(MfaError):
    """Base class of refused attempts: count them."""

    code = "mfa_verification_failed"
    status = 401


class InvalidCode(VerificationFailed):
    """The one-time code (TOTP or recovery) is malformed or does not match."""

    code = "invalid_code"


class ReplayedCode(VerificationFailed):
    """RFC 6238 section 5.2: this TOTP time step was accepted before; a code is good once."""

    code = "replayed_code"


class MalformedCredential(VerificationFailed):
    """The WebAuthn response is not a well-formed PublicKeyCredential (JSON, base64url, CBOR)."""

    code = "malformed_credential"
    status = 400


class ChallengeUnavailable(VerificationFailed):
    """The WebAuthn challenge is unknown, used, expired, for another ceremony or another subject."""

    code = "invalid_challenge"


class OriginMismatch(VerificationFailed):
    """WebAuthn L2 section 7.1 step 9 / 7.2 step 13: clientDataJSON.origin is not one of ours."""

    code = "origin_mismatch"


class RpIdMismatch(VerificationFailed):
    """WebAuthn L2 section 7.1 step 13 / 7.2 step 15: authenticatorData.rpIdHash is not SHA-256(rp id)."""

    code = "rp_id_mismatch"


class UserPresenceRequired(VerificationFailed):
    """The authenticator did not set the UP flag."""

    code = "user_presence_required"


class UserVerificationRequired(VerificationFailed):
    """The authenticator did not set the UV flag (no PIN or biometric check): not a step-up."""

    code = "user_verification_required"


class CounterRegression(VerificationFailed):
    """WebAuthn L2 section 6.1.1: the signature counter did not grow; the authenticator may be cloned."""

    code = "counter_regression"


class UnknownCredential(VerificationFailed):
    """The credential is not registered to this subject (or its user handle is someone else's)."""

    code = "unknown_credential"


class CredentialExists(VerificationFailed):
    """WebAuthn L2 section 7.1 step 22: this credential id is registered already."""

    code = "credential_exists"
    status = 409


class InvalidCredential(VerificationFailed):
    """The attestation or the assertion signature does not verify."""

    code = "invalid_credential"
