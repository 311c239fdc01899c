"""RFC 7591 registration and RFC 7592 client configuration with their I/O: secrets, storage, audit, registry.

Registration is guarded by an initial access token (RFC 7591 section 3, ``PORTCULLIS_REGISTRATION_
INITIAL_ACCESS_TOKEN``), the configuration endpoint by the registration access token issued with each
client (RFC 7592 section 1.2). Both are Bearer tokens (RFC 6750) compared as SHA-256 digests in constant
time; the server keeps only the digests. A client secret is issued for the ``client_secret_*`` methods,
shown once and kept as a scrypt hash.

Every change is stored with its audit entry (``client.registered``, ``client.updated``,
``client.deleted``) in one transaction, then applied to this process's :class:`ClientRegistry`. Other
processes see it at their next :meth:`Registrar.reload` (the app's housekeeping calls it). Static clients
are out of reach: their ids have no registration access token, and the registry keeps them first.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from app.audit import events
from app.clock import Clock, Entropy
from app.errors import InvalidToken, ServerError
from app.oauth.clients import Client, ClientRegistry, describe_errors, hash_client_secret
from app.oauth.registration import (
    RegistrationRules,
    build_client,
    changed_fields,
    client_information,
    public_metadata,
    registration_client_uri,
    registration_token_hash,
    replacement_metadata,
    requested_metadata,
    stored_client,
    stored_metadata,
    uses_secret,
)
from app.settings import Settings
from app.storage.models_authz import ClientRecord
from app.storage.records import AuditRecord

log = logging.getLogger("portcullis.registration")

TOKEN_BYTES = 32  # client secrets and registration access tokens: 256 bits
CLIENT_ID_BYTES = 16


class ClientStore(Protocol):
    """Dynamically registered clients. Each change takes its audit entry and appends it in the same
    transaction; replace and delete apply to live (not deleted) clients only."""

    async def create(self, record: ClientRecord, audit: AuditRecord) -> bool:
        """Store a new client; False (nothing written) if the client_id was ever used."""
        ...

    async def get(self, client_id: str) -> ClientRecord | None:
        """The live client, or None (unknown or deleted)."""
        ...

    async def replace(self, client_id: str, metadata_json: str, now: datetime, audit: AuditRecord) -> bool:
        """Swap the metadata of a live client; False (nothing written) if there is none."""
        ...

    async def delete(self, client_id: str, now: datetime, audit: Callable[[int], AuditRecord]) -> bool:
        """Delete a live client and revoke the refresh tokens issued to it; ``audit`` gets their number.
        False (nothing written) if there is no live client."""
        ...

    async def list_active(self) -> list[ClientRecord]:
        """Every live client, oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class InitialAccess:
    """Proof that the request carried the initial access token (its digest, for the audit entry)."""

    token_hash: str


@dataclass(frozen=True, slots=True)
class ConfigurationAccess:
    """Proof that the request carried ``record``'s registration access token (RFC 7592 section 1.2)."""

    record: ClientRecord
    client: Client
    token: str  # echoed in responses: RFC 7592 section 3 requires it, and the client holds it anyway


class Registrar:
    """Registers, reads, replaces and deletes dynamic clients; one per app, built at start-up."""

    def __init__(
        self,
        store: ClientStore,
        registry: ClientRegistry,
        auditor: events.Auditor,
        clock: Clock,
        entropy: Entropy,
        settings: Settings,
        scopes: Iterable[str],
    ) -> None:
        self._store = store
        self._registry = registry
        self._auditor = auditor
        self._clock = clock
        self._entropy = entropy
        self._issuer = settings.issuer
        self.enabled = settings.registration_enabled
        token = settings.registration_initial_access_token
        self._initial_hash = (
            registration_token_hash(token.get_secret_value()) if self.enabled and token is not None else None
        )
        self._rules = RegistrationRules(
            scopes=frozenset(scopes),
            max_access_token_lifetime=settings.access_token_ttl_seconds,
            max_refresh_token_lifetime=settings.refresh_token_ttl_seconds,
        )
        # Changes and reloads of this process take turns, so a reload's older snapshot cannot undo a
        # change made while it was reading.
        self._lock = asyncio.Lock()
        self._shadowed: set[str] = set()

    # -- check_* steps: who may do what -------------------------------------------------------------------

    def check_initial_token(self, token: str) -> InitialAccess:
        digest = registration_token_hash(token)
        if self._initial_hash is None or not hmac.compare_digest(digest, self._initial_hash):
            raise InvalidToken("the initial access token is not valid")
        return InitialAccess(digest)

    async def check_registration_token(self, client_id: str, token: str) -> ConfigurationAccess:
        """RFC 7592 section 2: 401 invalid_token for a wrong token and for a client that is not there
        (unknown, deleted, or static: a static client has no registration access token)."""
        record = None if self._registry.is_static(client_id) else await self._store.get(client_id)
        digest = registration_token_hash(token)
        if record is None or not hmac.compare_digest(digest, record.registration_token_hash):
            raise InvalidToken(
                "the registration access token is not valid for this client",
                debug=f"client {client_id[:64]!r}",
            )
        return ConfigurationAccess(record, self._stored(record), token)

    # -- RFC 7591 section 3: registration -------------------------------------------------------------------

    async def register(
        self, access: InitialAccess, body: Mapping[str, Any], meta: events.RequestMeta
    ) -> dict[str, Any]:
        """Register a client; the client information response, with its secret and token (shown once)."""
        metadata = requested_metadata(body)
        secret = self._entropy.token(TOKEN_BYTES) if uses_secret(metadata) else None
        client = build_client(
            metadata,
            client_id=self._new_client_id(),
            client_secret_hash=hash_client_secret(secret) if secret is not None else None,
            rules=self._rules,
        )
        token = self._entropy.token(TOKEN_BYTES)
        now = self._clock.now()
        record = ClientRecord(
            client.client_id, stored_metadata(client), registration_token_hash(token), now, now
        )
        audit = self._auditor.event(
            events.CLIENT_REGISTERED,
            events.SUCCESS,
            meta,
            client_id=client.client_id,
            at=now,
            data={
                "metadata": public_metadata(client),
                "secret_issued": secret is not None,
                "registration_token_sha256": record.registration_token_hash,
                "initial_access_token_sha256": access.token_hash,
            },
        )
        async with self._lock:
            if not await self._store.create(record, audit):
                raise ServerError("could not register the client; try again", debug="client_id collision")
            self._registry.put_dynamic(client)
        return self._information(client, record, token, secret)

    # -- RFC 7592 section 2: read, replace, delete ----------------------------------------------------------

    def read(self, access: ConfigurationAccess) -> dict[str, Any]:
        return self._information(access.client, access.record, access.token, None)

    async def replace(
        self, access: ConfigurationAccess, body: Mapping[str, Any], meta: events.RequestMeta
    ) -> dict[str, Any]:
        """RFC 7592 section 2.2: the body is the whole new metadata. The issued secret stays while the auth
        method uses one; a method that newly needs a secret gets a fresh one (shown once)."""
        current = access.client
        metadata = replacement_metadata(body, current)
        secret: str | None = None
        secret_hash: str | None = None
        if uses_secret(metadata):
            secret_hash = current.client_secret_hash
            if secret_hash is None:
                secret = self._entropy.token(TOKEN_BYTES)
                secret_hash = hash_client_secret(secret)
        client = build_client(
            metadata, client_id=current.client_id, client_secret_hash=secret_hash, rules=self._rules
        )
        now = self._clock.now()
        audit = self._auditor.event(
            events.CLIENT_UPDATED,
            events.SUCCESS,
            meta,
            client_id=client.client_id,
            at=now,
            data={
                "changed": changed_fields(current, client),
                "metadata": public_metadata(client),
                "secret_issued": secret is not None,
            },
        )
        async with self._lock:
            if not await self._store.replace(client.client_id, stored_metadata(client), now, audit):
                raise InvalidToken(
                    "the client no longer exists", debug=f"client {client.client_id!r} deleted"
                )
            self._registry.put_dynamic(client)
        return self._information(client, access.record, access.token, secret)

    async def delete(self, access: ConfigurationAccess, meta: events.RequestMeta) -> None:
        """RFC 7592 section 2.3: the client, its registration access token and its refresh tokens end."""
        client_id = access.record.client_id
        now = self._clock.now()

        def audit(revoked: int) -> AuditRecord:
            data = {"revoked_refresh_tokens": revoked}
            return self._auditor.event(
                events.CLIENT_DELETED, events.SUCCESS, meta, client_id=client_id, at=now, data=data
            )

        async with self._lock:
            if not await self._store.delete(client_id, now, audit):
                raise InvalidToken("the client no longer exists", debug=f"client {client_id!r} deleted")
            self._registry.remove_dynamic(client_id)

    # -- other processes' changes ---------------------------------------------------------------------------

    async def reload(self) -> int:
        """Replace the registry's dynamic clients with the stored ones; the number now registered.

        Called at start-up and periodically, so that every process sees what the others changed.
        """
        async with self._lock:
            clients: list[Client] = []
            for record in await self._store.list_active():
                try:
                    clients.append(stored_client(record.metadata_json))
                except ValidationError:
                    log.warning(
                        "dynamic client %r: stored metadata no longer valid; skipped", record.client_id
                    )
            shadowed = self._registry.set_dynamic(clients)
        for client_id in set(shadowed) - self._shadowed:
            log.warning("dynamic client %r is shadowed by the static client of the same id", client_id)
        self._shadowed = set(shadowed)
        return len(clients) - len(shadowed)

    # -- helpers --------------------------------------------------------------------------------------------

    def _new_client_id(self) -> str:
        for _ in range(4):  # 128 random bits: a clash is only thinkable with a hand-picked static id
            client_id = self._entropy.token(CLIENT_ID_BYTES)
            if self._registry.get(client_id) is None:
                return client_id
        raise ServerError("could not register the client; try again", debug="no fresh client_id")

    def _stored(self, record: ClientRecord) -> Client:
        try:
            return stored_client(record.metadata_json)
        except ValidationError as exc:
            raise ServerError(
                "the stored client metadata no longer validates",
                debug=f"client {record.client_id!r}: {describe_errors(exc)}",
            ) from None

    def _information(
        self, client: Client, record: ClientRecord, token: str, secret: str | None
    ) -> dict[str, Any]:
        return client_information(
            client,
            issued_at=record.created_at,
            registration_client_uri=registration_client_uri(self._issuer, client.client_id),
            registration_access_token=token,
            client_secret=secret,
        )
