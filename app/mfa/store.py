"""What app.mfa needs from storage: factors and recovery codes, and single-use WebAuthn challenges.

``app.storage.sql_mfa.SqlFactorStore`` implements both on SQLite and PostgreSQL. Every method that changes
state takes the audit entry describing the change and appends it in the same transaction: no factor,
no use and no removal without its entry. Single-use steps are one conditional UPDATE (or DELETE) so that
of concurrent attempts exactly one wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from app.storage.models_mfa import ChallengeRecord, FactorRecord
from app.storage.records import AuditRecord

__all__ = ["ChallengeRecord", "ChallengeStore", "FactorRecord", "FactorStore", "MfaStore"]


class FactorStore(Protocol):
    """A subject's second factors and recovery codes."""

    async def factors(self, subject: str) -> list[FactorRecord]:
        """Every factor of ``subject``, pending ones included, oldest first."""
        ...

    async def add_factor(self, subject: str, factor: FactorRecord, audit: AuditRecord) -> bool:
        """Store a new factor. False (nothing written) if its WebAuthn credential id is registered already."""
        ...

    async def update_after_use(
        self,
        factor_id: str,
        *,
        now: datetime,
        audit: AuditRecord,
        last_step: int | None = None,
        sign_count: int | None = None,
    ) -> bool:
        """Record an accepted use: a TOTP ``last_step`` or a WebAuthn ``sign_count``, conditionally.

        The UPDATE applies only if ``last_step`` is above the stored one (or none is stored), or
        ``sign_count`` is above the stored one (or both are zero: an authenticator without a counter). It
        also confirms a pending factor. False, and nothing written, when another use got there first.
        """
        ...

    async def remove_factor(self, subject: str, factor_id: str, audit: AuditRecord) -> bool:
        """Delete the factor; when no confirmed factor is left, the recovery codes go too (there is nothing
        left to recover). False, nothing written, if ``subject`` has no such factor."""
        ...

    async def replace_recovery_codes(
        self, subject: str, code_hashes: Sequence[str], now: datetime, audit: AuditRecord
    ) -> None:
        """Void every recovery code of ``subject`` and store these instead."""
        ...

    async def use_recovery_code(
        self, subject: str, code_hash: str, now: datetime, audit: AuditRecord
    ) -> bool:
        """Mark an unused code of ``subject`` used; False (nothing written) if there is none. Single use."""
        ...

    async def record_failure(self, audit: AuditRecord) -> None:
        """Append the entry of a refused attempt (nothing else changes) in its own transaction."""
        ...


class ChallengeStore(Protocol):
    """WebAuthn challenges: issued to one subject for one ceremony, short-lived, consumed once."""

    async def put_challenge(self, challenge: ChallengeRecord, audit: AuditRecord | None = None) -> None: ...

    async def consume_challenge(self, challenge_hash: str, subject: str, purpose: str, now: datetime) -> bool:
        """Mark the challenge used if it is live and was issued to ``subject`` for ``purpose``; else False."""
        ...

    async def purge_stale(self, now: datetime, pending_before: datetime) -> int:
        """Delete expired challenges and TOTP enrolments unconfirmed since ``pending_before`` or earlier."""
        ...


class MfaStore(FactorStore, ChallengeStore, Protocol):
    """Both, as the service takes them."""
