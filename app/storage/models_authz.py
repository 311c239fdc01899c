"""Tables of the authorization-code flow (RFC 6749 4.1, RFC 9126 PAR), dynamic client registration
(RFC 7591/7592) and shared single-use JWT ids (RFC 7523 client assertions, RFC 9449 DPoP proofs).

Handles given to clients (``request_uri``, the interaction id, the browser binding, codes, registration
access tokens) are stored as SHA-256 hashes only. Each row is consumed by one conditional UPDATE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.models import Base, UTCDateTime


class AuthorizationRequest(Base):
    """One authorization request: pushed (PAR) or sent to /authorize, then the wallet interaction it starts.

    ``params`` is the checked request (JSON). ``request_uri_hash`` is set for pushed requests and cleared
    when /authorize takes the request (single use); ``interaction_hash`` and ``browser_hash`` are set then.
    After the wallet signs in, ``grant`` holds what was proven (JSON) until consent turns it into a code.
    """

    __tablename__ = "authorization_requests"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(255))
    params: Mapped[str] = mapped_column(Text)
    pushed: Mapped[bool] = mapped_column(Boolean)
    request_uri_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    interaction_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    browser_hash: Mapped[str | None] = mapped_column(String(64))
    siwe_nonce_hash: Mapped[str | None] = mapped_column(String(64))
    grant: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    authenticated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuthorizationCode(Base):
    """An authorization code: at most 60 s, single use; ``family_id`` names what its redemption issued."""

    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(255))
    redirect_uri: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    oidc_nonce: Mapped[str | None] = mapped_column(String(255))
    grant: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    family_id: Mapped[str | None] = mapped_column(String(64))


class RegisteredClient(Base):
    """A client registered through RFC 7591; RFC 7592 reads, replaces and deletes it."""

    __tablename__ = "registered_clients"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    metadata_json: Mapped[str] = mapped_column(Text)
    registration_token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A live row of ``registered_clients``: the client's metadata (JSON, its secret as a scrypt hash only)
    and the SHA-256 (hex) of its registration access token."""

    client_id: str
    metadata_json: str
    registration_token_hash: str
    created_at: datetime
    updated_at: datetime


class UsedJti(Base):
    """A JWT id seen once (``kind`` is "assertion" or "dpop"); kept until the JWT could no longer be used."""

    __tablename__ = "used_jtis"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
