"""SQLAlchemy 2 models: the tables behind nonces, refresh tokens and signing keys.

Secrets are never stored: nonces and refresh tokens are kept as SHA-256 hashes, private keys encrypted.
Times are stored as UTC and read back timezone-aware on every backend (see :class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, LargeBinary, MetaData, String, Text, and_
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on PostgreSQL (timestamptz) and SQLite (naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Nonce(Base):
    """A SIWE nonce handed out by POST /siwe/nonce; single use, consumed by a conditional UPDATE."""

    __tablename__ = "siwe_nonces"

    nonce_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(255))
    oidc_nonce: Mapped[str | None] = mapped_column(String(255))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RefreshToken(Base):
    """One refresh token of a rotation family. Rotation stamps ``rotated_at`` and names the successor;
    reuse revokes the family, except a bounded retry of the successor's immediate predecessor."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255), index=True)
    address: Mapped[str] = mapped_column(String(42))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    scope: Mapped[str] = mapped_column(Text)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
    amr: Mapped[str] = mapped_column(String(255), server_default="siwe")
    acr: Mapped[str] = mapped_column(String(64), server_default="urn:portcullis:acr:wallet")
    authorization_details: Mapped[str] = mapped_column(Text, server_default="[]")
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    successor_hash: Mapped[str | None] = mapped_column(String(64))


class SigningKey(Base):
    """A token-signing key. The private half is AES-GCM encrypted under the server secret."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[str] = mapped_column(Text)
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when a newer key takes over; the public key stays published until every token it signed expired.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    publish_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When it starts signing: published (stored) at least one JWKS cache lifetime before (app.oidc.keys).
    activates_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


Index("ix_refresh_tokens_expires_at", RefreshToken.expires_at)


class AuditEntry(Base):
    """One entry of the tamper-evident audit log (docs/AUDIT.md). ``hash`` chains it to ``prev_hash``."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(24))  # RFC 3339 UTC with milliseconds, as hashed
    type: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(255), index=True)
    client_id: Mapped[str | None] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    ua_hash: Mapped[str | None] = mapped_column(String(64))
    session_hash: Mapped[str | None] = mapped_column(String(64))
    kid: Mapped[str | None] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(128))
    data: Mapped[str] = mapped_column(Text)  # canonical JSON object
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


# The sign-in entries, which the risk engine reads (app.risk.history) through two partial indexes: other
# entries never enter them, so only sign-ins pay for them. Both cover the reads they serve: a subject's
# sign-ins and a network's are each a few adjacent index entries, without the table's rows. Each also
# requires its leading column: a read by subject then cannot be planned on the network's index, nor the
# reverse, even when the planner has no statistics yet (a new log).
SIGN_IN_ENTRIES = ("signin.succeeded", "signin.failed")
_SUBJECT_SIGN_INS = and_(AuditEntry.type.in_(SIGN_IN_ENTRIES), AuditEntry.actor.is_not(None))
_NETWORK_SIGN_INS = and_(AuditEntry.type.in_(SIGN_IN_ENTRIES), AuditEntry.ip.is_not(None))
Index(
    "ix_audit_log_signin_subject",
    AuditEntry.actor,
    AuditEntry.type,
    AuditEntry.ts,
    AuditEntry.ip,
    sqlite_where=_SUBJECT_SIGN_INS,
    postgresql_where=_SUBJECT_SIGN_INS,
)
Index(
    "ix_audit_log_signin_network",
    AuditEntry.ip,
    AuditEntry.type,
    AuditEntry.ts,
    sqlite_where=_NETWORK_SIGN_INS,
    postgresql_where=_NETWORK_SIGN_INS,
)


class AuditHead(Base):
    """The single row every append locks: it hands out gapless sequence numbers and the previous hash."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    # The log's identity, signed into every checkpoint: tells this log's checkpoint file from another's.
    log_id: Mapped[str | None] = mapped_column(String(32))


class AuditCheckpoint(Base):
    """A signed statement "the log had ``seq`` entries ending in ``head_hash`` at ``ts``"."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    head_hash: Mapped[str] = mapped_column(String(64))
    ts: Mapped[str] = mapped_column(String(24))
    kid: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    log_id: Mapped[str | None] = mapped_column(String(32))


class AuditKey(Base):
    """The dedicated Ed25519 key that signs audit checkpoints (never used for tokens)."""

    __tablename__ = "audit_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[str] = mapped_column(Text)
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChainEvent(Base):
    """The on-chain events already audited: one ``chain.change`` entry per event and wallet, whichever
    replica's log follower saw it first (its row is written in the same transaction as the entry)."""

    __tablename__ = "chain_events"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    tx_hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account: Mapped[str] = mapped_column(String(42), primary_key=True)
    event: Mapped[str] = mapped_column(String(64), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
