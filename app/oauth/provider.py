"""The provider context: what every protocol core needs, assembled once per app in ``create_app``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

from app.audit.events import Auditor
from app.chain.access import ChainAccess
from app.clock import Clock, Entropy
from app.errors import InvalidClient
from app.mfa.service import MfaService
from app.oauth.client_auth import AssertionJtiStore, ClientKeys
from app.oauth.clients import ClientRegistry
from app.oidc.keys import KeyRing, publish_window
from app.oidc.tokens import TokenPolicy
from app.policy.model import Policy
from app.risk.geo import IpCountry
from app.risk.guard import Guard
from app.risk.history import SignInHistory
from app.settings import Settings
from app.storage.records import AuditLog, AuthStore, CheckpointStore, KeyStore


def secret_hash(value: str) -> str:
    """How single-use secrets (nonces, refresh tokens) are stored: hex SHA-256, never the value itself."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(slots=True)
class KeyHolder:
    """The current key ring; swapped whole when keys are reloaded or rotated (never mutated in place)."""

    ring: KeyRing


@dataclass(slots=True)
class Provider:
    settings: Settings
    store: AuthStore
    key_store: KeyStore
    keys: KeyHolder
    clock: Clock
    entropy: Entropy
    auditor: Auditor
    chains: ChainAccess
    mfa: MfaService
    guard: Guard
    trading_policy: Policy
    sign_in_history: SignInHistory
    client_registry: ClientRegistry
    assertion_jtis: AssertionJtiStore
    client_keys: ClientKeys
    ip_country: IpCountry
    audit_log: AuditLog
    checkpoint_store: CheckpointStore
    policy: TokenPolicy = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.policy = TokenPolicy(
            issuer=s.issuer,
            audience=s.access_token_audience,
            access_ttl=timedelta(seconds=s.access_token_ttl_seconds),
            id_ttl=timedelta(seconds=s.id_token_ttl_seconds),
        )

    @property
    def key_publish_window(self) -> timedelta:
        """How long a retired signing key stays in the JWKS: the longest token lifetime plus reload grace."""
        return publish_window(self.policy.access_ttl, self.policy.id_ttl)

    def check_client(self, client_id: str | None) -> str:
        """The effective client id: the default client when none is named, else a known one."""
        if client_id is None:
            return self.settings.default_client_id
        if client_id not in self.settings.clients:
            raise InvalidClient(f"unknown client_id {client_id[:64]!r}")
        return client_id
