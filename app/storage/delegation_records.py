"""DelegationStore: a wallet's delegations to its bots' keys (docs/DELEGATION.md).

app.storage.sql_delegations implements it.

Every change takes the audit entry that describes it and appends it in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.storage.records import AuditRecord


class DelegationExists(Exception):
    """The signed message was registered before (one message, one delegation)."""


@dataclass(frozen=True, slots=True)
class DelegationRecord:
    delegation_id: str
    message_hash: str
    subject: str
    address: str
    chain_id: int
    delegate_jkt: str
    scope: str  # the scopes signed for, space-separated
    authorization_details: str  # the RFC 9396 details signed for (JSON array)
    message: str
    created_at: datetime
    expires_at: datetime
    not_before: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None

    def live(self, now: datetime) -> bool:
        """Not revoked, started, not expired."""
        started = self.not_before is None or self.not_before <= now
        return self.revoked_at is None and started and now < self.expires_at

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        if self.not_before is not None and now < self.not_before:
            return "not_yet_valid"
        return "active"


class DelegationStore(Protocol):
    async def create(self, record: DelegationRecord, audit: AuditRecord) -> None:
        """Store ``record`` with its audit entry; DelegationExists when its message was stored before."""
        ...

    async def get(self, delegation_id: str) -> DelegationRecord | None: ...

    async def for_subject(self, subject: str) -> list[DelegationRecord]:
        """The subject's delegations, newest first, whatever their state."""
        ...

    async def listing(self, subject: str | None = None, limit: int = 100) -> list[DelegationRecord]:
        """Delegations for the operator, newest first (one subject's, or everyone's)."""
        ...

    async def revoke(
        self, delegation_id: str, now: datetime, reason: str, audit: AuditRecord, subject: str | None = None
    ) -> bool:
        """Revoke a live (not yet revoked) delegation, the subject's own when ``subject`` is given, with
        its audit entry, in one conditional UPDATE; False (nothing written) when there was none."""
        ...

    async def active(self, delegation_id: str, now: datetime) -> bool:
        """Is the delegation live now (not revoked, started, not expired)? Liveness asks this."""
        ...
