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
from app.oauth.client_secrets import SecretVerifier
from app.oauth.clients import ClientRegistry
from app.oauth.dpop import JtiStore
from app.oauth.registrar import Registrar
from app.oidc.keys import KeyRing, publish_window
from app.oidc.tokens import TokenPolicy
from app.policy.model import Policy
from app.risk.client_guard import ClientAuthGuard
from app.risk.geo import IpCountry
from app.risk.guard import Guard
from app.risk.history import SignInHistory
from app.settings import Settings
from app.storage.authz_records import AuthzStore
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
    client_guard: ClientAuthGuard  # failed client authentication (app.oauth.client_failures)
    trading_policy: Policy
    sign_in_history: SignInHistory
    client_registry: ClientRegistry
    assertion_jtis: AssertionJtiStore
    client_keys: ClientKeys
    ip_country: IpCountry
    audit_log: AuditLog
    checkpoint_store: CheckpointStore
    authz: AuthzStore
    dpop_jtis: JtiStore
    secret_verifier: SecretVerifier
    # Keys the stateless RFC 9449 section 8 DPoP nonces (HMAC of the time window); derived from the secret.
    dpop_nonce_key: bytes
    policy: TokenPolicy = field(init=False)
    registrar: Registrar = field(init=False)  # set by app.bootstrap.start

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
        """The effective client id at the SIWE endpoints: the default client when none is named, a public
        one from PORTCULLIS_CLIENTS, or a registered public client."""
        if client_id is None:
            return self.settings.default_client_id
        if client_id in self.settings.clients:
            return client_id
        # A registered public client (method none) may use the SIWE endpoints too; a confidential one must
        # authenticate, which these endpoints cannot ask for, so it goes through /authorize instead.
        registered = self.client_registry.get(client_id)
        if registered is None or registered.token_endpoint_auth_method != "none":  # noqa: S105
            raise InvalidClient(f"unknown client_id {client_id[:64]!r}")
        return client_id
