"""Assembly at the edge: turn Settings into a running Provider (engine, migrations, secret, keys).

Shared by the server's lifespan and the CLI, so both work on exactly the same database and keys.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine

from app.audit import checkpoints, events
from app.audit.chain import entry_hash
from app.chain.access import ChainAccess
from app.chain.devchain import DevChain, DevChainProvider
from app.clock import Clock, Entropy, SystemClock, SystemEntropy
from app.metrics import Metrics
from app.mfa.service import MfaService, MfaSettings
from app.mfa.webauthn import RelyingParty
from app.oauth import origins
from app.oauth.client_jwks import CachedClientKeys, HttpJwksFetcher
from app.oauth.client_secrets import SecretVerifier
from app.oauth.clients import Client, ClientRegistry, parse_client, read_clients
from app.oauth.provider import KeyHolder, Provider, key_timing
from app.oauth.registrar import Registrar
from app.oidc import keys
from app.policy.model import DEFAULT_POLICY_PATH, load_policy
from app.risk.client_guard import build_client_guard
from app.risk.geo import StaticCidrTable
from app.risk.guard import build_guard
from app.risk.history import SqlSignInHistory
from app.settings import ChainSettings, Settings
from app.storage import migrate
from app.storage.db import Timeouts, create_engine
from app.storage.records import AuditRecord
from app.storage.redis import check_credentials
from app.storage.sql import SqlStore
from app.storage.sql_authz import SqlAuthzStore
from app.storage.sql_clients import SqlClientStore
from app.storage.sql_delegations import SqlDelegationStore
from app.storage.sql_jtis import SqlAssertionJtiStore, SqlDpopJtiStore
from app.storage.sql_mfa import SqlFactorStore

DEV_SECRET_FILE = "secret.key"  # noqa: S105 (a file name)


# The sample perps API's introspection client (sdk/examples/perps_api, docs/RESOURCE_SERVER.md).
PERPS_API_CLIENT_ID = "perps-api"
PERPS_API_SECRET_FILE = "perps-api-client.secret"  # noqa: S105 (a file name)
# The demo dApp's public client (frontend-demo/, served at /demo/ in development: app/http/demo.py).
DEMO_CLIENT_ID = "frontend-demo"
DEMO_PATH = "/demo/"
DEMO_SCOPES = ("openid", "compliance", "portfolio:read", "perps:trade", "vault:withdraw")


def development_secret(data_dir: Path, file_name: str = DEV_SECRET_FILE) -> bytes:
    """Development only: a random secret generated once and kept in the data dir (mode 0600)."""
    path = data_dir / file_name
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    value = secrets.token_urlsafe(48).encode()
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value


def server_secret(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    if settings.mode == "production":  # also refused by Settings; kept here so this can never fall through
        raise RuntimeError("PORTCULLIS_SECRET_KEY is required in production")
    return development_secret(settings.data_dir)


def demo_client(settings: Settings) -> Client:
    """The dApp of frontend-demo/, served at ``<issuer>/demo/`` in development: a public client (a page
    keeps no secret) that signs in both ways, through the hosted page (PAR, PKCE, DPoP) and in the page
    itself (``siwe_domains``: the issuer's own host, since the demo is served beside it)."""
    page = f"{settings.issuer}{DEMO_PATH}"
    origin = origins.serialize(settings.issuer) or settings.issuer
    client = {
        "client_id": DEMO_CLIENT_ID,
        "client_name": "Portcullis demo dApp (development)",
        "redirect_uris": [page],
        "post_logout_redirect_uris": [page],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": list(DEMO_SCOPES),
        "token_endpoint_auth_method": "none",
        "siwe_domains": [urlsplit(settings.issuer).netloc],
        "allowed_origins": [origin],
        "dpop_bound_access_tokens": True,
        "require_pushed_authorization_requests": True,
    }
    return parse_client(client)


def development_clients(settings: Settings) -> list[Client]:
    """Development only: the demo dApp's public client (:func:`demo_client`), and the sample perps API's
    confidential client, allowed to introspect, once ``portcullis dev perps-api-secret`` (which ``make
    run`` calls) has made its random secret in the data dir. Production registers neither and never reads
    that file, so no development client or secret is ever accepted there."""
    if settings.mode != "development":
        return []
    path = settings.data_dir / PERPS_API_SECRET_FILE
    if not path.is_file():
        return [demo_client(settings)]
    client = {
        "client_id": PERPS_API_CLIENT_ID,
        "client_name": "Sample perps API (development)",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "scope": ["openid"],  # no service scope: it introspects, it never gets a token of its own
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": path.read_bytes().strip().decode(),
    }
    return [demo_client(settings), parse_client(client)]


def client_registry(settings: Settings) -> ClientRegistry:
    """The clients file's clients, plus the development clients whose ids the file does not take."""
    static = read_clients(settings.clients_file) if settings.clients_file else []
    taken = {c.client_id for c in static}
    return ClientRegistry([*static, *(c for c in development_clients(settings) if c.client_id not in taken)])


@dataclass(slots=True)
class Runtime:
    provider: Provider
    engine: AsyncEngine
    secret: bytes
    checkpointer: checkpoints.Checkpointer
    store: SqlStore


@dataclass(slots=True)
class Opened:
    """The database, migrated, with its keys opened under the server secret."""

    engine: AsyncEngine
    store: SqlStore
    secret: bytes
    auditor: events.Auditor
    signer: checkpoints.AuditSigner
    schedule: keys.KeySchedule


async def open_database(
    settings: Settings, clock: Clock, meta: events.RequestMeta, metrics: Metrics | None = None
) -> Opened:
    """Open the database, apply migrations, load (or create) the signing and audit keys. The failures an
    operator fixes (database down or missing, a secret that does not open the keys) surface here."""
    await migrate_database(settings)
    engine = create_engine(settings.database_url, database_timeouts(settings))
    store = SqlStore(
        engine,
        hasher=entry_hash,
        timeouts=database_timeouts(settings),
        batch_max=settings.audit_batch_max,
        batch_wait=settings.audit_batch_wait_ms / 1000,
        metrics=metrics,
    )
    try:
        secret = server_secret(settings)
        auditor = events.Auditor(settings, clock, secret)
        now = clock.now()
        signer = await checkpoints.load_or_create_signer(store, secret, auditor, now)
        schedule = await keys.load_or_create(
            store,
            secret,
            settings.signing_alg,
            now,
            key_timing(settings),
            key_activation(auditor, meta, "first start"),
        )
    except BaseException:
        await store.close()
        await engine.dispose()
        raise
    return Opened(engine, store, secret, auditor, signer, schedule)


async def start(
    settings: Settings,
    clock: Clock | None = None,
    entropy: Entropy | None = None,
    meta: events.RequestMeta | None = None,
    dev_chain: DevChain | None = None,
    metrics: Metrics | None = None,
) -> Runtime:
    """Open the database, apply migrations, load (or create) the signing and audit keys.

    ``meta`` says who is starting (the CLI passes the operator); key creation is audited under it.
    ``metrics``: the app's instruments (app.metrics); the CLI's runs get a set of their own.
    """
    clock = clock or SystemClock()
    meta = meta or events.RequestMeta()
    metrics = metrics or Metrics()
    guard = build_guard(settings, clock)
    try:
        if guard.shared is not None:  # wrong Redis credentials stop start-up; Redis merely down does not
            await check_credentials(guard.shared.limits.client)
        opened = await open_database(settings, clock, meta, metrics)
    except BaseException:
        await guard.close()
        raise
    engine, store, secret, auditor = opened.engine, opened.store, opened.secret, opened.auditor
    provider = Provider(
        settings=settings,
        store=store,
        key_store=store,
        keys=KeyHolder(opened.schedule, clock),
        clock=clock,
        entropy=entropy or SystemEntropy(),
        auditor=auditor,
        chains=chain_access(settings, clock, dev_chain, metrics),
        guard=guard,
        client_guard=build_client_guard(settings, guard, clock),
        trading_policy=load_policy(settings.policy_file or DEFAULT_POLICY_PATH),
        sign_in_history=SqlSignInHistory(engine),
        client_registry=client_registry(settings),
        assertion_jtis=SqlAssertionJtiStore(engine, clock.now, store.write_lock),
        client_keys=CachedClientKeys(
            HttpJwksFetcher(allow_loopback_http=settings.mode == "development"), clock
        ),
        # A static CIDR table in development; production plugs a real lookup in here (docs/RISK.md).
        ip_country=StaticCidrTable.development() if settings.mode == "development" else StaticCidrTable({}),
        mfa=MfaService(
            clock=clock,
            store=SqlFactorStore(engine, entry_hash, store.write_lock),
            auditor=auditor,
            secret=secret,
            settings=MfaSettings(
                rp=RelyingParty(settings.webauthn_rp_id, "Portcullis", tuple(settings.webauthn_origins))
            ),
            entropy=entropy,
        ),
        audit_log=store,
        checkpoint_store=store,
        audit_sink=checkpoints.SinkHealth(settings.audit_sink_max_backlog or settings.audit_checkpoint_every),
        authz=SqlAuthzStore.beside(store),
        secret_verifier=SecretVerifier(clock),
        dpop_jtis=SqlDpopJtiStore(engine, clock.now, store.write_lock),
        dpop_nonce_key=hashlib.sha256(b"portcullis dpop nonce\x00" + secret).digest(),
        csrf_key=hashlib.sha256(b"portcullis csrf\x00" + secret).digest(),
        delegations=SqlDelegationStore(engine, entry_hash, store.write_lock),
        metrics=metrics,
    )
    # RFC 7591/7592: dynamic clients join the static ones before the first request (docs/CLIENTS.md).
    clients = SqlClientStore(engine, entry_hash, store.write_lock)
    scopes = provider.trading_policy.scopes_supported()
    provider.registrar = Registrar(
        clients, provider.client_registry, auditor, clock, provider.entropy, settings, scopes
    )
    await provider.registrar.reload()
    assert settings.audit_checkpoint_file is not None
    checkpointer = checkpoints.Checkpointer(
        store,
        store,
        opened.signer,
        checkpoints.FileSink(settings.audit_checkpoint_file),
        settings.audit_checkpoint_every,
        timedelta(seconds=settings.audit_checkpoint_seconds),
        provider.audit_sink,
    )
    return Runtime(provider, engine, secret, checkpointer, store)


async def migrate_database(settings: Settings) -> str | None:
    """Run the migrations to head on an engine of their own, whose statements are not bounded by the
    serving engine's statement timeout (a migration may take longer than any request may), and return
    the revision the database is at."""
    bounded = database_timeouts(settings)
    engine = create_engine(settings.database_url, replace(bounded, statement=None))
    try:
        await migrate.upgrade(engine)
        return await migrate.current_revision(engine)
    finally:
        await engine.dispose()


def database_timeouts(settings: Settings) -> Timeouts:
    return Timeouts(
        connect=settings.database_connect_timeout_seconds,
        statement=settings.database_statement_timeout_seconds,
        pool=settings.database_pool_timeout_seconds,
    )


def chain_access(
    settings: Settings, clock: Clock, dev_chain: DevChain | None, metrics: Metrics | None = None
) -> ChainAccess:
    """The configured chains, or in development the embedded chain through its in-process provider."""
    if dev_chain is None:
        return ChainAccess(settings.chains, clock, metrics=metrics)
    url = "inprocess://dev-chain"
    config = dev_chain_settings(settings, dev_chain.chain_id, url, dev_chain.registry_address)
    return ChainAccess([config], clock, providers={url: DevChainProvider(dev_chain)}, metrics=metrics)


def dev_chain_settings(settings: Settings, chain_id: int, rpc_url: str, registry: str) -> ChainSettings:
    """How the development chain is read: by the server in-process, by ``policy explain`` over RPC.
    With PORTCULLIS_COMPLIANCE=off it still checks contract wallets, but gates nothing."""
    return ChainSettings(
        chain_id=chain_id,
        rpc_urls=[rpc_url],
        registry=registry if settings.compliance == "required" else None,
        multicall=None,
        sanctions_required=False,
    )


def key_activation(auditor: events.Auditor, meta: events.RequestMeta, why: str) -> keys.Describe:
    def describe(kid: str) -> AuditRecord:
        return auditor.event(events.KEY_ACTIVATED, events.SUCCESS, meta, reason=why, kid=kid)

    return describe
