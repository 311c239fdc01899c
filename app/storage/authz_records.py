"""Records and the store protocol of the authorization-code flow (RFC 6749 4.1, RFC 9126).

The core (``app.oauth.authorize``, ``app.oauth.code_grant``) depends on :class:`AuthzStore` only;
``app.storage.sql_authz`` implements it. Every handle a client or browser holds is stored as a SHA-256 hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from app.storage.records import AuditRecord, RefreshRecord


@dataclass(frozen=True, slots=True)
class AuthzRequestRecord:
    request_id: str
    client_id: str
    params: str  # the checked authorization request (JSON)
    pushed: bool
    created_at: datetime
    expires_at: datetime
    started_at: datetime | None = None
    authenticated_at: datetime | None = None
    finished_at: datetime | None = None
    browser_hash: str | None = None
    siwe_nonce_hash: str | None = None
    grant: str | None = None  # what the wallet sign-in proved (JSON), once it has


@dataclass(frozen=True, slots=True)
class CodeRecord:
    code_hash: str
    request_id: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    dpop_jkt: str | None
    oidc_nonce: str | None
    grant: str
    issued_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None = None
    family_id: str | None = None


@dataclass(frozen=True, slots=True)
class Interaction:
    """What /authorize hands the browser: the interaction handle, the browser binding and the SIWE nonce."""

    interaction_hash: str
    browser_hash: str
    nonce_hash: str
    expires_at: datetime


RequestUriFailure = Literal["unknown", "used", "expired", "other_client"]
InteractionFailure = Literal["unknown", "expired", "finished", "not_authenticated", "authenticated"]
CodeFailure = Literal["unknown", "reused", "expired", "other_client"]


class RequestUriUnavailable(Exception):
    def __init__(self, reason: RequestUriFailure) -> None:
        super().__init__(reason)
        self.reason: RequestUriFailure = reason


class InteractionUnavailable(Exception):
    def __init__(self, reason: InteractionFailure) -> None:
        super().__init__(reason)
        self.reason: InteractionFailure = reason


class CodeUnavailable(Exception):
    def __init__(self, reason: CodeFailure, family_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason: CodeFailure = reason
        self.family_id = family_id


class AuthzStore(Protocol):
    async def push(self, request: AuthzRequestRecord, request_uri_hash: str, audit: AuditRecord) -> None:
        """Store a pushed request (RFC 9126 section 2.2) under the hash of its ``request_uri``."""

    async def take_pushed(
        self, request_uri_hash: str, client_id: str, now: datetime, interaction: Interaction
    ) -> AuthzRequestRecord:
        """Use a pushed request once: start its interaction and issue its SIWE nonce, atomically.

        Raises :class:`RequestUriUnavailable`.
        """

    async def start(self, request: AuthzRequestRecord, interaction: Interaction) -> None:
        """Store a request sent straight to /authorize, already started, with its SIWE nonce."""

    async def find_interaction(self, interaction_hash: str) -> AuthzRequestRecord | None: ...

    async def authenticate(
        self, request_id: str, nonce_hash: str, now: datetime, grant: str, audit: AuditRecord
    ) -> None:
        """Record the wallet sign-in: consume the interaction's SIWE nonce and keep ``grant``, atomically.

        Raises ``NonceUnavailable`` or :class:`InteractionUnavailable`; nothing is written then.
        """

    async def finish(
        self, request_id: str, now: datetime, code: CodeRecord | None, audit: AuditRecord
    ) -> None:
        """End an authenticated interaction (consent given: ``code``; refused: None). Once only."""

    async def abandon(self, request_id: str, now: datetime, audit: AuditRecord) -> None:
        """End an interaction the person left ("Back to the client"), signed in or not, even past its
        expiry. Once only: raises :class:`InteractionUnavailable` (``finished``) if it already ended."""

    async def find_code(self, code_hash: str) -> CodeRecord | None: ...

    async def redeem_code(
        self, code_hash: str, client_id: str, now: datetime, session: RefreshRecord, audit: AuditRecord
    ) -> CodeRecord:
        """Use a code once and store the session (refresh-token family) it starts, atomically.

        Raises :class:`CodeUnavailable` (``reused`` carries the family the first redemption started).
        """

    async def purge_expired(self, now: datetime) -> int: ...
