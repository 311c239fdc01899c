"""What the cores hand to storage and get back: plain records, the store protocols and their failures.

The cores (``app.oauth``, ``app.oidc``) depend on these protocols only; ``app.storage.sql`` implements them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol


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


@dataclass(frozen=True, slots=True)
class KeyRecord:
    kid: str
    alg: str
    public_jwk: str
    private_key_encrypted: bytes
    created_at: datetime
    retired_at: datetime | None = None
    publish_until: datetime | None = None


NonceFailure = Literal["unknown", "used", "expired", "other_client"]
RefreshFailure = Literal["unknown", "reused", "revoked", "expired", "other_client"]


class NonceUnavailable(Exception):
    """The nonce could not be consumed; ``reason`` says why. Nothing was written."""

    def __init__(self, reason: NonceFailure) -> None:
        super().__init__(reason)
        self.reason: NonceFailure = reason


class RefreshUnavailable(Exception):
    """The refresh token could not be rotated. On ``reused`` the whole family has been revoked."""

    def __init__(self, reason: RefreshFailure, family_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason: RefreshFailure = reason
        self.family_id = family_id


class AuthStore(Protocol):
    """Single-use artefacts of sign-in: nonces and refresh-token families."""

    async def issue_nonce(
        self,
        nonce_hash: str,
        client_id: str,
        oidc_nonce: str | None,
        issued_at: datetime,
        expires_at: datetime,
    ) -> None: ...

    async def complete_sign_in(
        self, nonce_hash: str, client_id: str, now: datetime, refresh: RefreshRecord
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
        check: Callable[[RefreshRecord], None] | None = None,
    ) -> RefreshRecord:
        """Mark ``token_hash`` rotated and store its successor (same family and expiry) atomically.

        ``check`` sees the old record inside the transaction; if it raises, nothing is written.
        Raises RefreshUnavailable when the token cannot be rotated (on reuse, after revoking the family).
        """
        ...

    async def revoke_family(self, family_id: str, now: datetime, reason: str) -> int: ...

    async def purge_expired(self, now: datetime) -> int: ...

    async def ping(self) -> None: ...


class KeyStore(Protocol):
    """Token-signing keys, private halves encrypted by the caller."""

    async def list_keys(self) -> list[KeyRecord]: ...

    async def activate_key(self, key: KeyRecord, now: datetime, publish_until: datetime) -> None:
        """Make ``key`` the active key; retire the others, published until ``publish_until``."""
        ...
