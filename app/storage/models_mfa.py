"""Second factors of a wallet subject (docs/MFA.md): the tables, and the plain records storage hands out.

The tables sit on ``app.storage.models.Base``'s metadata. Nothing secret is stored in the clear: TOTP secrets
are AES-256-GCM encrypted by ``app.mfa.sealing`` before they get here, recovery codes and WebAuthn
challenges are kept as SHA-256 hashes. A WebAuthn public key is public.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.models import Base, UTCDateTime


class MfaFactor(Base):
    """One enrolled (or, while ``confirmed_at`` is NULL, pending) second factor of a subject.

    ``last_step`` (TOTP) and ``sign_count`` (WebAuthn) only ever grow, through a conditional UPDATE: a code
    or an authenticator counter value is accepted once.
    """

    __tablename__ = "mfa_factors"

    factor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # TOTP: the encrypted RFC 6238 secret and the last accepted time step.
    secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_step: Mapped[int | None] = mapped_column(BigInteger)
    # WebAuthn: base64url credential id (at most 1023 bytes, WebAuthn L2 section 5.8.3), COSE public key,
    # the authenticator's signature counter and model.
    credential_id: Mapped[str | None] = mapped_column(String(1400), unique=True, index=True)
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    sign_count: Mapped[int | None] = mapped_column(BigInteger)
    aaguid: Mapped[str | None] = mapped_column(String(36))


class MfaRecoveryCode(Base):
    """A single-use recovery code, as the SHA-256 of its normalised text; ``used_at`` is set once."""

    __tablename__ = "mfa_recovery_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MfaChallenge(Base):
    """A WebAuthn challenge (SHA-256 of it) issued to one subject for one ceremony; consumed once."""

    __tablename__ = "mfa_challenges"

    challenge_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


@dataclass(frozen=True, slots=True)
class FactorRecord:
    """A factor as the cores see it. TOTP fields are None for WebAuthn factors and the other way round."""

    factor_id: str
    kind: str  # "totp" or "webauthn"
    label: str
    created_at: datetime
    confirmed_at: datetime | None = None
    last_used_at: datetime | None = None
    secret_encrypted: bytes | None = None
    last_step: int | None = None
    credential_id: str | None = None
    public_key: bytes | None = None
    sign_count: int | None = None
    aaguid: str | None = None


@dataclass(frozen=True, slots=True)
class ChallengeRecord:
    challenge_hash: str
    subject: str
    purpose: str
    issued_at: datetime
    expires_at: datetime
