"""Delegations of a wallet to its trading bots (docs/DELEGATION.md): the table and the record cores see.

A row is the signed EIP-4361 message with its EIP-5573 ReCap, as checked at creation: who delegated
(``subject``), to which key (``delegate_jkt``, an RFC 7638 thumbprint), what was signed for (``scope`` and
``authorization_details``, before any narrowing: the policy narrows them again at every token), and the
validity window. ``message_hash`` (SHA-256 of the signed text) is unique, so one signed message makes at
most one delegation. Revocation sets ``revoked_at`` once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.models import Base, UTCDateTime


class Delegation(Base):
    __tablename__ = "delegations"

    delegation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_hash: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    address: Mapped[str] = mapped_column(String(42))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    delegate_jkt: Mapped[str] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(Text)
    authorization_details: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
