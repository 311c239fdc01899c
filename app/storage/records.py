"""What the cores hand to storage and get back: plain records, the store protocols and their failures.

The cores (``app.oauth``, ``app.oidc``) depend on these protocols only; ``app.storage.sql`` implements them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    token_hash: str
    family_id: str
    client_id: str
    subject: str
    address: str
    chain_id: int
    scope: str
    auth_time: datetime
    issued_at: datetime
    expires_at: datetime
    # How the session was authenticated (RFC 8176 methods, space-separated, and the acr): refreshed tokens
    # say what the sign-in proved, never more.
    amr: str = "siwe"
    acr: str = "urn:portcullis:acr:wallet"
    authorization_details: str = "[]"  # RFC 9396 details granted at sign-in (JSON)
    dpop_jkt: str | None = None  # RFC 9449 section 5: the key a public client's refresh token is bound to


@dataclass(frozen=True, slots=True)
class KeyRecord:
    kid: str
    alg: str
    public_jwk: str
    private_key_encrypted: bytes
    created_at: datetime
    retired_at: datetime | None = None
    publish_until: datetime | None = None
    # Signing keys: when it starts signing (app.oidc.keys); None for keys stored before activation times.
    activates_at: datetime | None = None

    def new_row(self) -> dict[str, object]:
        """The columns a freshly stored key has (signing_keys and audit_keys share them)."""
        return {
            "kid": self.kid,
            "alg": self.alg,
            "public_jwk": self.public_jwk,
            "private_key_encrypted": self.private_key_encrypted,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An audit entry before the log gives it a sequence number and links it (see app.audit.chain)."""

    ts: str
    type: str
    outcome: str
    node: str
    reason: str | None = None
    actor: str | None = None
    client_id: str | None = None
    request_id: str | None = None
    ip: str | None = None
    ua_hash: str | None = None
    session_hash: str | None = None
    kid: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def entry(self, seq: int, prev_hash: str) -> dict[str, Any]:
        return {
            "seq": seq,
            "ts": self.ts,
            "type": self.type,
            "outcome": self.outcome,
            "reason": self.reason,
            "actor": self.actor,
            "client_id": self.client_id,
            "request_id": self.request_id,
            "ip": self.ip,
            "ua_hash": self.ua_hash,
            "session_hash": self.session_hash,
            "kid": self.kid,
            "node": self.node,
            "data": self.data,
            "prev_hash": prev_hash,
        }


@dataclass(frozen=True, slots=True)
class ChainEventKey:
    """One on-chain event as it touched one wallet: the one-entry rule's key (docs/AUDIT.md, "chain.change").

    ``event`` is the event's name, or ``Reorged`` for the report that its block was dropped (a second,
    distinct fact about the same log)."""

    chain_id: int
    transaction_hash: str
    log_index: int
    account: str
    event: str
    block_number: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class SubjectRevocation:
    """End every live session of ``subject`` (``revoke_subject``), described by ``audit``, and, with
    ``delegation_audit``, every delegation of it."""

    subject: str
    now: datetime
    reason: str
    audit: AuditRecord
    # The subject's delegations to bots end too (docs/DELEGATION.md): one entry per delegation, built from
    # its id and delegate thumbprint. None: sessions only.
    delegation_audit: Callable[[str, str], AuditRecord] | None = None


NonceFailure = Literal["unknown", "used", "expired", "other_client"]
RefreshFailure = Literal["unknown", "reused", "revoked", "expired", "other_client", "superseded"]


@dataclass(frozen=True, slots=True)
class RetryRule:
    """FAPI 2.0 Security Profile 5.3.2.1 (10): when a rotated refresh token may be presented again.

    A token rotated after ``since`` whose successor is still unused and unrevoked is rotated once more and
    the successor revoked (the client never received it). ``bound_only``: only a DPoP-bound token qualifies
    (its key is proven by the caller's ``check``), for clients that do not authenticate.
    """

    since: datetime
    bound_only: bool


class NonceUnavailable(Exception):
    """The nonce could not be consumed; ``reason`` says why. Nothing was written."""

    def __init__(self, reason: NonceFailure) -> None:
        super().__init__(reason)
        self.reason: NonceFailure = reason


class RefreshUnavailable(Exception):
    """The refresh token could not be rotated. On ``reused`` the caller revokes the whole family; on
    ``superseded`` a concurrent retry of the same token won (the family lives on)."""

    def __init__(self, reason: RefreshFailure, family_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason: RefreshFailure = reason
        self.family_id = family_id


class AuthStore(Protocol):
    """Single-use artefacts of sign-in: nonces and refresh-token families.

    Every method that changes state takes the audit entry describing the change and appends it in the
    same transaction: no token without its audit row, and a failed audit write fails the change.
    """

    async def issue_nonce(
        self,
        nonce_hash: str,
        client_id: str,
        oidc_nonce: str | None,
        issued_at: datetime,
        expires_at: datetime,
        audit: AuditRecord | None = None,
        before_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Store a new nonce. ``before_commit`` is awaited before the commit, inside the transaction where
        that holds no lock others wait for (not on SQLite): if it raises (the request's admission was
        refused), nothing is stored."""
        ...

    async def complete_sign_in(
        self, nonce_hash: str, client_id: str, now: datetime, refresh: RefreshRecord, audit: AuditRecord
    ) -> str | None:
        """Consume the nonce and store the refresh token in one transaction; return the OIDC nonce.

        Raises NonceUnavailable (and writes nothing) when the nonce is unknown, used, expired or was
        issued to another client.
        """
        ...

    async def rotate_refresh(
        self,
        token_hash: str,
        client_id: str,
        new_hash: str,
        now: datetime,
        audit: Callable[[RefreshRecord, bool], AuditRecord],
        check: Callable[[RefreshRecord], None] | None = None,
        retry: RetryRule | None = None,
    ) -> RefreshRecord:
        """Mark ``token_hash`` rotated and store its successor (same family and expiry) atomically.

        With ``retry``, an already rotated token that the rule admits is rotated again instead, and its
        unused successor revoked, in the same transaction. ``check`` sees the old record inside the
        transaction; if it raises, nothing is written. ``audit`` describes the rotation from the new
        successor (and whether it was a retry). Raises RefreshUnavailable when the token cannot be
        rotated; deciding what a reused token means (revoking its family) is the caller's.
        """
        ...

    async def revoke_family(self, family_id: str, now: datetime, reason: str, audit: AuditRecord) -> int: ...

    async def revoke_subject(self, subject: str, now: datetime, reason: str, audit: AuditRecord) -> int:
        """Revoke every live refresh-token family of ``subject`` (e.g. the registry revoked the wallet)."""
        ...

    async def record_chain_event(
        self, key: ChainEventKey, audit: AuditRecord, revocation: SubjectRevocation | None = None
    ) -> bool:
        """Claim ``key`` and, only if no process claimed it before, append ``audit`` and carry out
        ``revocation``, all in one transaction. False (and nothing written) when ``key`` was claimed."""
        ...

    async def family_active(self, family_id: str, now: datetime) -> bool:
        """Is the session (refresh-token family) still live: not revoked, not expired?"""
        ...

    async def refresh_usable(self, token_hash: str, now: datetime) -> bool:
        """Is this refresh token the family's current one (not rotated, not revoked, not expired)?"""
        ...

    async def find_refresh(self, token_hash: str) -> RefreshRecord | None:
        """A refresh token's record, whatever its state (read only)."""
        ...

    async def purge_expired(self, now: datetime) -> int: ...

    async def ping(self) -> None: ...


class KeyStore(Protocol):
    """Token-signing keys, private halves encrypted by the caller."""

    async def list_keys(self) -> list[KeyRecord]: ...

    async def activate_key(
        self, key: KeyRecord, at: datetime, publish_until: datetime, audit: AuditRecord
    ) -> None:
        """Store ``key`` (signing from ``key.activates_at``); the keys not yet retired retire ``at`` that
        moment and stay published until ``publish_until``."""
        ...


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    seq: int
    head_hash: str
    ts: str
    kid: str
    signature: str
    log_id: str | None = None  # which log this checkpoint is of (None: signed before logs had an identity)


class AuditLog(Protocol):
    """The append-only, hash-chained audit log (app.audit.chain defines the hash)."""

    async def record(self, audit: AuditRecord) -> int:
        """Append one entry in its own transaction; return its sequence number."""
        ...

    async def head(self) -> tuple[int, str]:
        """The last sequence number handed out and its hash (0 and GENESIS for an empty log)."""
        ...

    async def log_id(self) -> str | None:
        """The log's identity: a random id given to it when it was created (docs/AUDIT.md, "Checkpoints")."""
        ...

    def entries(self, from_seq: int = 1, to_seq: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Entries in ascending seq order, each a dict of the chain fields plus ``hash``."""
        ...

    async def purge_entries(self, up_to_seq: int) -> int: ...


class CheckpointStore(Protocol):
    """Signed checkpoints and the audit key that signs them."""

    async def checkpoints(self) -> list[CheckpointRecord]: ...

    async def add_checkpoint(self, checkpoint: CheckpointRecord) -> bool:
        """Store a checkpoint; False if one for that seq exists already (another process made it)."""
        ...

    async def audit_keys(self) -> list[KeyRecord]: ...

    async def add_audit_key(self, key: KeyRecord, audit: AuditRecord) -> None: ...
