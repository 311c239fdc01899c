"""Audit event types of second factors (docs/MFA.md, catalogue in docs/AUDIT.md's style).

Every entry's ``actor`` is the subject; ``data`` names the factor (``factor_id``, ``kind``) and never holds
a code, a secret or a challenge.
"""

from __future__ import annotations

MFA_ENROLMENT_STARTED = "mfa.enrolment_started"
MFA_ENROLLED = "mfa.enrolled"
MFA_CHALLENGE_ISSUED = "mfa.challenge_issued"
MFA_VERIFIED = "mfa.verified"
MFA_FAILED = "mfa.failed"
MFA_REPLAYED = "mfa.replayed"
MFA_REMOVED = "mfa.removed"
MFA_RECOVERY_CODES_ISSUED = "mfa.recovery_codes_issued"

ALL = (
    MFA_ENROLMENT_STARTED,
    MFA_ENROLLED,
    MFA_CHALLENGE_ISSUED,
    MFA_VERIFIED,
    MFA_FAILED,
    MFA_REPLAYED,
    MFA_REMOVED,
    MFA_RECOVERY_CODES_ISSUED,
)
