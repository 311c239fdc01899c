"""The provider context: what every protocol core needs, assembled once per app in ``create_app``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

from app.audit.checkpoints import SinkHealth
from app.audit.events import Auditor
from app.chain.access import ChainAccess
from app.clock import Clock, Entropy
from app.errors import AccessDenied, InvalidClient
from app.metrics import Metrics
from app.mfa.service import MfaService
from app.oauth import origins
from app.oauth.client_auth import AssertionJtiStore, ClientKeys
from app.oauth.client_secrets import SecretVerifier
from app.oauth.clients import ClientRegistry
from app.oauth.dpop import JtiStore
from app.oauth.registrar import Registrar
from app.oidc.keys import KeyRing, KeySchedule, Timing, activation_lead, publish_window
from app.oidc.tokens import TokenPolicy
from app.policy.model import Policy
from app.risk.client_guard import ClientAuthGuard
from app.risk.geo import IpCountry
from app.risk.guard import Guard
from app.risk.history import SignInHistory
from app.settings import Settings
from app.storage.authz_records import AuthzStore
from app.storage.delegation_records import DelegationStore
from app.storage.records import AuditLog, AuthStore, CheckpointStore, KeyStore


def key_timing(s: Settings) -> Timing:
    """A rotation's timing from the settings: the lead /jwks's max-age asks for, and the publish window."""
    return Timing(
        lead=activation_lead(
            timedelta(seconds=s.jwks_max_age_seconds), timedelta(seconds=s.key_reload_seconds)
        ),
        publish_window=publish_window(
            timedelta(seconds=s.access_token_ttl_seconds), timedelta(seconds=s.id_token_ttl_seconds)
        ),
    )


def secret_hash(value: str) -> str:
    """How single-use secrets (nonces, refresh tokens) are stored: hex SHA-256, never the value itself."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(slots=True)
class KeyHolder:
    """The stored keys as last loaded (swapped whole on reload, never mutated in place) and the clock that
    says which of them signs now: a replica switches keys at the stored activation time, by its own clock."""

    schedule: KeySchedule
    clock: Clock

    @property
    def ring(self) -> KeyRing:
        return self.schedule.at(self.clock.now())


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
    audit_sink: SinkHealth  # ASVS 16.5.3: authentication stops when checkpoints cannot leave the database
    authz: AuthzStore
    dpop_jtis: JtiStore
    secret_verifier: SecretVerifier
    # Keys the stateless RFC 9449 section 8 DPoP nonces (HMAC of the time window); derived from the secret.
    dpop_nonce_key: bytes
    # Keys the hosted page's CSRF tokens (app.http.csrf: HMAC of the browser cookie); derived from the secret.
    csrf_key: bytes
    delegations: DelegationStore  # a wallet's delegations to its bots (app.oauth.delegation)
    # The app's instruments (app.metrics); a fresh set of its own for a Provider built outside an app.
    metrics: Metrics = field(default_factory=Metrics)
    policy: TokenPolicy = field(init=False)
    own_origins: frozenset[str] = field(init=False)
    registrar: Registrar = field(init=False)  # set by app.bootstrap.start

    def __post_init__(self) -> None:
        s = self.settings
        self.policy = TokenPolicy(
            issuer=s.issuer,
            audience=s.access_token_audience,
            access_ttl=timedelta(seconds=s.access_token_ttl_seconds),
            id_ttl=timedelta(seconds=s.id_token_ttl_seconds),
        )
        # The server's own pages, where the PORTCULLIS_CLIENTS public clients' messages are signed.
        own = (origins.serialize(s.issuer), origins.serialize(s.siwe_uri))
        self.own_origins = frozenset(o for o in own if o is not None)

    @property
    def key_publish_window(self) -> timedelta:
        """How long a retired signing key stays in the JWKS: the longest token lifetime plus reload grace."""
        return publish_window(self.policy.access_ttl, self.policy.id_ttl)

    @property
    def key_timing(self) -> Timing:
        return key_timing(self.settings)

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

    def origin_allowed(self, origin: str, client_id: str | None) -> bool:
        """May a browser page on ``origin`` call the per-client endpoints (token, userinfo, revocation,
        introspection, SIWE) for ``client_id``? With no client named (a CORS preflight, a request that
        names none): is it the origin of any client? The one rule behind CORS and the Origin checks."""
        if client_id is None:
            return origin in self.own_origins or self.client_registry.origin_registered(origin)
        registered = self.client_registry.get(client_id)
        if registered is not None:
            return origin in registered.browser_origins()
        return client_id in self.settings.clients and origin in self.own_origins

    def check_origin(self, origin: str | None, client_id: str | None) -> None:
        """Refuse a browser request (one with an ``Origin`` header) from a page ``client_id`` does not own.

        Requests without ``Origin`` (backends, the CLI) are not browser requests and go on.
        """
        if origin is not None and not self.origin_allowed(origin, client_id):
            who = f"client {client_id[:64]!r}" if client_id is not None else "any registered client"
            raise AccessDenied(f"origin {origin[:100]!r} is not allowed for {who} (docs/CLIENTS.md)")
