"""Settings: the one configuration object, read from ``PORTCULLIS_*`` environment variables.

Nothing else in the code base reads ``os.environ``. ``load_settings()`` validates everything at start-up and
raises :class:`SettingsError` naming the offending variable, so a bad value never reaches a request.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PORTCULLIS_"

# The smallest secret we accept in production: 32 bytes of text (256 bits if random).
MIN_SECRET_LENGTH = 32


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
DEV_CHAIN_ID = 31337  # the embedded development chain (app/chain/devchain.py), as anvil and hardhat
# Multicall3 is deployed at this address on most EVM chains; used when code is present there.
MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"


class EligibilityRule(BaseModel):
    """What a registry record must satisfy (the isEligible requirements of contracts/README.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    required_flags: int = Field(default=0, ge=0, lt=2**32)
    forbidden_flags: int = Field(default=0b1001, ge=0, lt=2**32)  # US_PERSON (bit 0) and FROZEN (bit 3)
    min_investor_class: int = Field(default=1, ge=1, le=3)
    min_kyc_level: int = Field(default=1, ge=1, le=3)
    max_aml_risk: int = Field(default=2, ge=1, le=3)


class EasSource(BaseModel):
    """Ethereum Attestation Service: an attestation of ``schema_uid`` by a trusted attester."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(pattern=ADDRESS_PATTERN)
    schema_uid: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    trusted_attesters: list[str] = Field(min_length=1)
    required: bool = False


class TokenGate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    standard: Literal["erc20", "erc721", "erc1155"]
    address: str = Field(pattern=ADDRESS_PATTERN)
    token_id: int | None = Field(default=None, ge=0)  # erc1155 only
    min_balance: int = Field(default=1, ge=1)
    required: bool = True


class ChainSettings(BaseModel):
    """One EVM chain Portcullis reads (and, for smart-contract wallets, calls)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain_id: int = Field(ge=1)
    rpc_urls: list[str] = Field(min_length=1)
    # ComplianceRegistry address; when set, sign-in on this chain requires an eligible record.
    registry: str | None = Field(default=None, pattern=ADDRESS_PATTERN)
    eligibility: EligibilityRule = Field(default_factory=EligibilityRule)
    confirmations: int = Field(default=0, ge=0, le=128)
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    rpc_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Gas cap for the eth_call that checks an ERC-1271 / ERC-6492 signature.
    call_gas_cap: int = Field(default=3_000_000, ge=100_000, le=30_000_000)
    multicall: str | None = Field(default=MULTICALL3, pattern=ADDRESS_PATTERN)
    sanctions_oracle: str | None = Field(default=None, pattern=ADDRESS_PATTERN)  # Chainalysis interface
    sanctions_required: bool = True
    identity_registry: str | None = Field(default=None, pattern=ADDRESS_PATTERN)  # ERC-3643
    identity_required: bool = False
    eas: EasSource | None = None
    token_gates: list[TokenGate] = Field(default_factory=list)
    # The time limit of the eth_call that checks an ERC-1271 / ERC-6492 signature. A chain that does not
    # answer within it gets 503 (could not check), never 401 (not signed).
    signature_timeout_seconds: float = Field(default=2.0, gt=0, le=30)

    def compliance_sources(self) -> dict[str, bool]:
        """Each compliance source this chain switches on, named as app.chain.sources names it: required?"""
        sources: dict[str, bool] = {}
        if self.registry is not None:
            sources["registry"] = True
        if self.sanctions_oracle is not None:
            sources["sanctions"] = self.sanctions_required
        if self.identity_registry is not None:
            sources["erc3643"] = self.identity_required
        if self.eas is not None:
            sources["eas"] = self.eas.required
        for gate in self.token_gates:
            name = f"token:{gate.address}" + ("" if gate.token_id is None else f":{gate.token_id}")
            sources[name] = gate.required
        return sources


class Settings(BaseSettings):
    """Every knob of a Portcullis process. Built once, passed down, never mutated after start-up."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=False)

    mode: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Pre-fork server processes sharing the listening socket (`portcullis serve --workers N`); one per core
    # (docs/DEPLOY.md, "Workers"). More than one needs PostgreSQL: SQLite is refused at start-up.
    workers: int = Field(default=1, ge=1, le=64)
    # SIGTERM: in-flight requests get this long to finish before their connections are closed.
    shutdown_timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    # Public base URL of this server. Default: http://{host}:{port} (development only).
    issuer: str = ""
    # Where the embedded database and development secrets live.
    data_dir: Path = Path("var")
    # SQLAlchemy async URL. Default: SQLite file under data_dir. PostgreSQL: postgresql+asyncpg://...
    database_url: str = ""
    # PostgreSQL time bounds (README, Settings): opening a connection (TCP, TLS, start-up), one statement
    # or round trip, and the wait for a free pooled connection. Past them the request answers 503 at once
    # instead of hanging on a database that is black-holed or stalled; the connection is discarded.
    database_connect_timeout_seconds: float = Field(default=1.5, gt=0, le=60)
    database_statement_timeout_seconds: float = Field(default=1.5, gt=0, le=3600)
    database_pool_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    # RFC 9110 section 10.2.3: the Retry-After (seconds) of every 503 (a dependency is down).
    retry_after_seconds: int = Field(default=5, ge=1, le=3600)
    # Encrypts signing keys at rest. Required in production; generated into data_dir in development.
    secret_key: SecretStr | None = None

    signing_alg: Literal["ES256", "EdDSA"] = "ES256"
    # The Cache-Control max-age of /jwks. A rotated key is published this long (plus one key reload) before
    # it signs anything, so a relying party's cached JWKS always holds it (docs/ARCHITECTURE.md, "Keys").
    jwks_max_age_seconds: int = Field(default=300, ge=1, le=86400)
    # How often each server re-reads the signing keys (and dynamic clients) another process changed.
    key_reload_seconds: int = Field(default=30, ge=1, le=300)

    # What a SIWE message must carry. Defaults: issuer host[:port], the issuer URL, the first allowed chain.
    siwe_domain: str = ""
    siwe_uri: str = ""
    # Who runs this server, as the hosted page names it to people ("... on <operator>'s list of verified
    # accounts"). Default: the issuer's host.
    operator_name: str = Field(default="", max_length=100)
    chain_ids: list[int] = Field(default_factory=lambda: [1], min_length=1)
    max_message_bytes: int = Field(default=8192, ge=512, le=65536)

    nonce_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    clock_skew_seconds: int = Field(default=60, ge=0, le=600)
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86400)
    id_token_ttl_seconds: int = Field(default=900, ge=60, le=86400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86400, ge=300, le=365 * 86400)
    # FAPI 2.0 Security Profile 5.3.2.1 (10): seconds after a rotation during which a client that lost the
    # response may present the previous refresh token again (while its successor is unused); 0 disables.
    refresh_retry_window: int = Field(default=60, ge=0, le=600)

    # Static client ids accepted until the client registry lands; the first is the default client.
    clients: list[str] = Field(default_factory=lambda: ["portcullis-demo"], min_length=1)
    # RFC 9068 `aud` of access tokens when no resource is named. Default: the issuer.
    access_token_audience: str = ""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Log lines (docs/DEPLOY.md, "Logs"): one JSON object per line, or human-readable text. Default: json in
    # production, text in development.
    log_format: Literal["", "json", "text"] = ""

    # GET /metrics, the Prometheus text format (docs/DEPLOY.md, "Metrics"): "off", "on" (served on the main
    # port) or "port:N" (served only on port N of PORTCULLIS_HOST, never on the main port). Default: on in
    # development, off in production.
    metrics: str = Field(default="", pattern=r"^(|off|on|port:[0-9]{1,5})$")
    # Several worker processes: the directory they share their samples through (prometheus-client's
    # multiprocess mode; exported as PROMETHEUS_MULTIPROC_DIR). Default: PROMETHEUS_MULTIPROC_DIR if set.
    metrics_dir: Path | None = Field(default_factory=lambda: _env_path("PROMETHEUS_MULTIPROC_DIR"))

    # Slow and idle clients (docs/DEPLOY.md "Slow clients"; app/http/slow_clients.py). A connection must
    # finish a request's headers this long after it opened or its last response ended; a request's body
    # must arrive this long after the app starts reading it (else 408); an idle connection between
    # requests is closed after the keep-alive time; connections beyond the cap get 503.
    http_header_timeout_seconds: float = Field(default=10.0, ge=0.5, le=300)
    http_body_timeout_seconds: float = Field(default=15.0, ge=0.5, le=300)
    http_keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    http_max_connections: int = Field(default=1000, ge=1, le=100_000)

    # Registered (confidential) clients: a JSON file (docs/CLIENTS.md). PORTCULLIS_CLIENTS lists public ones.
    clients_file: Path | None = None
    # The authorization-code flow (docs/AUTHORIZE.md). FAPI 2.0: every client must push its request (PAR,
    # RFC 9126); a client can also require it for itself. Codes live at most 60 s (FAPI 2.0 5.3.2.1).
    require_par: bool = False
    par_ttl_seconds: int = Field(default=60, ge=10, le=600)
    authorization_code_ttl_seconds: int = Field(default=60, ge=5, le=60)
    # RFC 9449 section 8: require DPoP proofs at the token endpoint to carry a server-issued nonce.
    dpop_nonces: bool = False

    # Delegations to trading bots (docs/DELEGATION.md): the longest a signed delegation may run (its
    # Expiration Time minus Issued At; the policy's maximum, default 30 days), and how long a bot's access
    # token lives (short: revocation reaches resource servers that do not introspect within it).
    delegation_max_seconds: int = Field(default=30 * 86400, ge=300, le=365 * 86400)
    delegation_token_ttl_seconds: int = Field(default=300, ge=30, le=900)

    # The trading policy (docs/POLICY.md): scopes, their requirements and the authorization details rules.
    # Default: the shipped policy/default.toml.
    policy_file: Path | None = None

    # Rate limits and failure locks (docs/RATE_LIMITS.md): per process in memory, or shared through Redis.
    redis_url: str | None = None
    # redis-py's client (app/storage/redis.py): a password kept out of the URL, TLS for rediss:// URLs (a
    # private CA, a client certificate and key), Sentinel (host:port of each sentinel and the master's
    # name; the URL then gives only scheme, credentials and db) and the per-operation socket timeout.
    redis_password: SecretStr | None = None
    redis_tls_ca_file: Path | None = None
    redis_tls_cert_file: Path | None = None
    redis_tls_key_file: Path | None = None
    redis_sentinels: list[str] = Field(default_factory=list)
    redis_sentinel_master: str | None = None
    redis_socket_timeout: float = Field(default=0.5, gt=0, le=10)
    # While Redis is unreachable: "fallback" judges each request by stricter per-process budgets (a
    # quarter of each), "refuse" answers guarded endpoints 503 with Retry-After (fail closed; with many
    # replicas the per-process budgets together exceed the shared one).
    redis_outage: Literal["fallback", "refuse"] = "fallback"
    rate_limits: bool = True
    # Proxies whose X-Forwarded-For / Forwarded headers are believed (CIDRs); others' headers are ignored.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    # Failure scores (EWMA, half-life 5 min) that lock an address (second-factor failures) or an IP.
    lock_threshold: float = Field(default=10.0, gt=0)
    lock_ip_threshold: float = Field(default=30.0, gt=0)
    lock_cooldown_seconds: int = Field(default=900, ge=1, le=86400)
    # Failed client authentication (docs/RATE_LIMITS.md), on even with rate_limits off (a security lock):
    # failures per client_id, all IPs together, before further attempts are 429 (then one more every
    # refill seconds); the failure score of one (client_id, IP) pair that locks the pair for the
    # cool-down; how long an IP that authenticated as a client stays exempt from that client's spent budget.
    client_auth_failure_budget: int = Field(default=100, ge=1, le=1_000_000)
    client_auth_failure_refill_seconds: float = Field(default=60.0, gt=0, le=86400)
    client_auth_lock_threshold: float = Field(default=10.0, gt=0)
    client_auth_trusted_seconds: int = Field(default=86400, ge=0, le=30 * 86400)

    # Risk-based step-up (docs/RISK.md): scores at which a sign-in needs a second factor, or is refused.
    risk_step_up_at: int = Field(default=40, ge=1)
    risk_deny_at: int = Field(default=70, ge=1)

    # WebAuthn relying party (app/mfa): rp id (default: the issuer's host) and the exact page origins
    # ceremonies run on (default: the issuer's origin).
    webauthn_rp_id: str = ""
    webauthn_origins: list[str] = Field(default_factory=list)

    # Chains (JSON list of ChainSettings). Empty in development: the embedded EVM is used (dev_chain).
    chains: list[ChainSettings] = Field(default_factory=list)
    # Or the same JSON list in a file, read at start: for a deployment where a job writes the contract
    # addresses before the server starts (docker-compose.yml's deploy job). Never both.
    chains_file: Path | None = None
    # The on-chain compliance gate. "required": production refuses to start without a chain that has a
    # required source. "off": the operator runs without any gate, on purpose; no chain may configure a
    # source, start-up logs a warning, /ready says so and every token's compliance claim is
    # {"source": "none"}.
    compliance: Literal["required", "off"] = "required"
    # Development only: run an in-process EVM with the registry deployed and demo accounts seeded, and
    # serve its JSON-RPC at /dev/chain/rpc for the CLI and browser wallets.
    dev_chain: bool = True
    # Development only: the sample perps API the dApp at /demo/ calls (frontend-demo/, make run starts it).
    demo_api_url: str = "http://127.0.0.1:8100"
    # Signer for `portcullis registry` writes: a hex private key, or an encrypted keystore file + password.
    registry_key: SecretStr | None = None
    registry_keystore: Path | None = None
    registry_keystore_password: SecretStr | None = None

    # Audit trail (docs/AUDIT.md). This process's name in every entry; default: host name.
    node_id: str = Field(default_factory=socket.gethostname, min_length=1, max_length=128)
    # How client IPs are recorded: full, truncated (IPv4 /24, IPv6 /48) or hashed (HMAC under the secret).
    audit_ip: Literal["full", "truncated", "hashed"] = "truncated"
    # Share of nonce issuances recorded (sign-ins are always recorded).
    audit_nonce_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # Group commit (app/storage/group_commit.py): concurrent audited writes share one transaction of at
    # most this many requests, which waits at most this long for company once its first is queued.
    audit_batch_max: int = Field(default=64, ge=1, le=10_000)
    audit_batch_wait_ms: float = Field(default=1.0, ge=0.0, le=100.0)
    # A signed checkpoint every N entries or M seconds, whichever comes first.
    audit_checkpoint_every: int = Field(default=1000, ge=1, le=1_000_000)
    audit_checkpoint_seconds: int = Field(default=60, ge=1, le=86400)
    # Write-once sink for checkpoints (one JSON line each). Default: data_dir/audit-checkpoints.jsonl.
    audit_checkpoint_file: Path | None = None
    # ASVS 16.5.3: once the sink cannot be written, at most this many audit entries may go without a
    # checkpoint in it; then authentication is refused (503) until a checkpoint is written. Default: the
    # checkpoint interval's entry count (audit_checkpoint_every).
    audit_sink_max_backlog: int | None = Field(default=None, ge=1, le=1_000_000)
    # Entries older than this may be purged, only up to a checkpoint (MiFID II / SEC 17a-4: years).
    audit_retention_days: int = Field(default=7 * 365 + 2, ge=1)

    # Dynamic client registration (RFC 7591/7592, docs/CLIENTS.md). Off by default: /register answers 404.
    # POST /register takes the initial access token as a Bearer token; only its SHA-256 is ever logged.
    registration_enabled: bool = False
    registration_initial_access_token: SecretStr | None = None

    def _worker_problems(self) -> list[str]:
        return _worker_problems_of(self)

    @model_validator(mode="after")
    def _derive_and_check(self) -> Settings:
        """Derive the defaults that depend on other settings, then check the rules between settings. Every
        rule appends its problem ("name: why") instead of raising, so one start-up names them all."""
        problems: list[str] = []
        self._load_chains_file(problems)
        self._derive_issuer(problems)
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'portcullis.db'}"
        if self.audit_checkpoint_file is None:
            self.audit_checkpoint_file = self.data_dir / "audit-checkpoints.jsonl"
        if self.audit_sink_max_backlog is None:
            self.audit_sink_max_backlog = self.audit_checkpoint_every
        if self.mode == "production" or self.chains:
            self.dev_chain = False
        problems += self._worker_problems()
        if not self.log_format:
            self.log_format = "json" if self.mode == "production" else "text"
        if not self.metrics:
            self.metrics = "off" if self.mode == "production" else "on"
        if self.metrics_port is not None and not 1 <= self.metrics_port <= 65535:
            problems.append("metrics: port:N takes a port number from 1 to 65535")
        elif self.metrics_port == self.port:
            problems.append("metrics: port:N must differ from PORTCULLIS_PORT (or use on)")
        if "chain_ids" not in self.model_fields_set:
            if self.chains:
                self.chain_ids = [c.chain_id for c in self.chains]
            elif self.dev_chain:
                self.chain_ids = [DEV_CHAIN_ID]
        if len({c.chain_id for c in self.chains}) != len(self.chains):
            problems.append("chains: each chain_id may appear once")
        if any(c < 1 for c in self.chain_ids):
            problems.append("chain_ids: chain ids are positive integers")
        if self.mode == "production":
            secret = self.secret_key.get_secret_value() if self.secret_key else ""
            if len(secret) < MIN_SECRET_LENGTH:
                problems.append(
                    f"secret_key: required in production, at least {MIN_SECRET_LENGTH} characters"
                )
        problems += self._redis_problems()
        problems += self._registration_problems()
        problems += self._compliance_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _compliance_problems(self) -> list[str]:
        """PORTCULLIS_COMPLIANCE: off is explicit and excludes sources; required means, in production, a
        required compliance source on every chain sign-ins are accepted on."""
        if self.compliance == "off":
            for chain in self.chains:
                if chain.compliance_sources():
                    names = ", ".join(chain.compliance_sources())
                    return [
                        f"compliance: off, but chain {chain.chain_id} configures compliance sources"
                        f" ({names}). Remove them, or leave PORTCULLIS_COMPLIANCE at required"
                    ]
            return []
        if self.mode == "production" and not any(any(c.compliance_sources().values()) for c in self.chains):
            # A compliance gate that is silently absent would sign in any wallet: refuse to start instead.
            return [
                "chains: production needs at least one chain with a required compliance source (registry,"
                " sanctions oracle, identity registry, EAS attestation or token gate). Configure"
                " PORTCULLIS_CHAINS, or set PORTCULLIS_COMPLIANCE=off to run without the compliance gate"
            ]
        if self.mode == "production":
            gated = {c.chain_id for c in self.chains if any(c.compliance_sources().values())}
            ungated = [c for c in self.chain_ids if c not in gated]
            if ungated:
                # A sign-in on an accepted chain without a gate would skip compliance for that wallet.
                return [
                    f"chain_ids: chain(s) {', '.join(map(str, ungated))} accept sign-ins but have no required"
                    " compliance source in PORTCULLIS_CHAINS. Configure one for each, remove them from"
                    " PORTCULLIS_CHAIN_IDS, or set PORTCULLIS_COMPLIANCE=off"
                ]
        return []

    def _load_chains_file(self, problems: list[str]) -> None:
        """PORTCULLIS_CHAINS_FILE: the chains list, validated exactly as PORTCULLIS_CHAINS is."""
        if self.chains_file is None:
            return
        if self.chains:
            problems.append("chains_file: set PORTCULLIS_CHAINS or PORTCULLIS_CHAINS_FILE, not both")
            return
        try:
            self.chains = TypeAdapter(list[ChainSettings]).validate_json(self.chains_file.read_bytes())
        except OSError as exc:
            problems.append(f"chains_file: cannot read {self.chains_file} ({exc.strerror or exc})")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the document"
            problems.append(f"chains_file: {self.chains_file}: {where}: {first['msg']}")

    def _derive_issuer(self, problems: list[str]) -> None:
        """The issuer (default http://{host}:{port} in development) and what follows from it."""
        if not self.issuer:
            if self.mode == "production":
                problems.append("issuer: required in production (the public https URL of this server)")
                return
            self.issuer = f"http://{self.host}:{self.port}"
        self.issuer = self.issuer.rstrip("/")
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            problems.append("issuer: must be an absolute http(s) URL without query or fragment")
            return
        if self.mode == "production" and parts.scheme != "https":
            problems.append("issuer: must use https in production")
        if not self.siwe_domain:
            self.siwe_domain = parts.netloc
        if not self.siwe_uri:
            self.siwe_uri = self.issuer
        if not self.operator_name.strip():
            self.operator_name = parts.hostname or parts.netloc
        if not self.webauthn_rp_id:
            self.webauthn_rp_id = parts.hostname or ""
        if not self.webauthn_origins:
            self.webauthn_origins = [f"{parts.scheme}://{parts.netloc}"]
        if not self.access_token_audience:
            self.access_token_audience = self.issuer

    def _redis_problems(self) -> list[str]:
        problems: list[str] = []
        if self.redis_url and urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            problems.append("redis_url: redis://host[:port][/db], rediss://... (TLS) or unix:///path")
        for entry in self.redis_sentinels:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                problems.append(f"redis_sentinels: {entry!r} is not host:port")
        if self.redis_sentinels and not self.redis_sentinel_master:
            problems.append("redis_sentinel_master: required with redis_sentinels (the master's name)")
        if self.redis_sentinels and not self.redis_url:
            problems.append(
                "redis_url: required with redis_sentinels (redis:// or rediss://, credentials, db)"
            )
        if self.redis_tls_key_file and not self.redis_tls_cert_file:
            problems.append("redis_tls_key_file: needs redis_tls_cert_file")
        return problems

    def _registration_problems(self) -> list[str]:
        token = self.registration_initial_access_token
        value = token.get_secret_value() if token is not None else ""
        if self.registration_enabled and not value:
            return ["registration_initial_access_token: required when registration_enabled is true"]
        if self.registration_enabled and self.mode == "production" and len(value) < MIN_SECRET_LENGTH:
            return [
                f"registration_initial_access_token: at least {MIN_SECRET_LENGTH} characters in production"
            ]
        return []

    @property
    def metrics_port(self) -> int | None:
        """The separate port /metrics is served on (PORTCULLIS_METRICS=port:N), else None."""
        kind, _, port = self.metrics.partition(":")
        return int(port) if kind == "port" else None

    @property
    def default_client_id(self) -> str:
        return self.clients[0]

    @property
    def default_chain_id(self) -> int:
        return self.chain_ids[0]

    def chain(self, chain_id: int) -> ChainSettings | None:
        return next((c for c in self.chains if c.chain_id == chain_id), None)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _worker_problems_of(settings: Settings) -> list[str]:
    """Several workers need a database every process writes to safely: SQLite has one writer per file and
    each worker would hold its own write lock, so it is refused rather than left to lock up under load."""
    if settings.workers == 1:
        return []
    problems: list[str] = []
    if not settings.database_url.startswith("postgresql"):
        problems.append(
            f"workers: {settings.workers} workers need PostgreSQL (PORTCULLIS_DATABASE_URL="
            'postgresql+asyncpg://...); SQLite takes one worker. See docs/DEPLOY.md, "Workers"'
        )
    if settings.dev_chain:
        problems.append(
            "workers: the development chain lives inside one process; with several workers configure"
            " PORTCULLIS_CHAINS (e.g. anvil) or set PORTCULLIS_DEV_CHAIN=false"
        )
    return problems


def export_metrics_environment(settings: Settings) -> None:
    """Before prometheus-client is first imported (the serve command, before the app and its workers):
    PORTCULLIS_METRICS_DIR becomes PROMETHEUS_MULTIPROC_DIR, which switches the library to its multiprocess
    mode in this process and in every worker it starts (they inherit the environment)."""
    if settings.metrics_dir is not None and settings.metrics != "off":
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.metrics_dir)


# PORTCULLIS_* variables that belong to tools around the server (the test suite), not to Settings.
NOT_SETTINGS = frozenset({"TEST_DATABASE_URL", "ANVIL_BIN"})


def _unknown_variables() -> list[str]:
    known = {name.upper() for name in Settings.model_fields} | NOT_SETTINGS
    return sorted(
        name for name in os.environ if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX) :] not in known
    )


def load_settings(**overrides: object) -> Settings:
    """Build and validate settings from the environment (plus explicit overrides, used by tests).

    Every problem is reported at once, in one SettingsError: unknown variables, every field's bad value, and
    every cross-field rule that fails (production requirements included). Pydantic checks the cross-field
    rules only once every field is valid, and a rule stops at its first refusal; so after each attempt the
    settings named by its problems are set back to their defaults and the rest is validated again, until
    nothing new is found. A rule added to a model validator (``raise ValueError("name: why")``) joins the
    list by itself.
    """
    problems = [f"{name}: unknown setting" for name in _unknown_variables()]
    # A misspelt variable would otherwise be ignored silently and a default used in its place.
    reported: set[str] = set()
    attempt: dict[str, object] = dict(overrides)
    settings: Settings | None = None
    for _ in range(len(Settings.model_fields) + 1):
        try:
            settings = Settings(**attempt)  # type: ignore[arg-type]
            break
        except ValidationError as exc:
            found = [(field, text) for field, text in _problems(exc) if field not in reported]
        problems += [f"{ENV_PREFIX}{field.upper()}:{text}" for field, text in found]
        reported |= {field for field, _ in found}
        resettable = [field for field, _ in found if field in Settings.model_fields]
        if not found or len(resettable) < len(found):
            break  # a problem that names no setting: nothing to set aside to look further
        for field in resettable:
            attempt[field] = Settings.model_fields[field].get_default(call_default_factory=True)
    if problems or settings is None:
        raise SettingsError("invalid settings: " + "; ".join(problems or ["no valid combination"]))
    return settings


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    """(setting name in lower case, " message") for each error of one validation."""
    problems = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if p != "__root__"]
        msg = err["msg"].removeprefix("Value error, ")
        if loc:
            problems.append((loc[0], f" {msg}"))
            continue
        for line in msg.splitlines():  # cross-field checks: one "name: why" per line
            field, _, rest = line.partition(":")
            problems.append((field.strip().lower(), rest))
    return problems
