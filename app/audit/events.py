"""Building audit entries: the event catalogue (docs/AUDIT.md) and privacy-preserving request metadata.

Secrets never enter an entry. Nonces, refresh-token families and user agents appear as SHA-256 hashes;
client IPs as configured (full, truncated or keyed hash).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app import logs
from app.clock import Clock
from app.settings import Settings
from app.storage.records import AuditRecord

NONCE_ISSUED = "nonce.issued"
SIGNIN_SUCCEEDED = "signin.succeeded"
SIGNIN_FAILED = "signin.failed"
TOKEN_REFRESHED = "token.refreshed"  # noqa: S105 (event names, not secrets)
TOKEN_REFRESH_FAILED = "token.refresh_failed"  # noqa: S105
TOKEN_FAMILY_REVOKED = "token.family_revoked"  # noqa: S105
SUBJECT_REVOKED = "token.subject_revoked"
TOKEN_INTROSPECTED = "token.introspected"  # noqa: S105
SESSION_LOGGED_OUT = "session.logged_out"
CHAIN_CHANGE = "chain.change"
AUTHORIZATION_PUSHED = "authorization.pushed"
AUTHORIZATION_GRANTED = "authorization.granted"
AUTHORIZATION_DENIED = "authorization.denied"
CODE_REDEEMED = "code.redeemed"
CODE_REUSED = "code.reused"
CODE_REDEEM_FAILED = "code.redeem_failed"
SERVICE_TOKEN_ISSUED = "token.service_issued"  # noqa: S105
RISK_LOCKED = "risk.locked"
# RFC 6749 section 10.10: a failed client authentication (app.oauth.client_failures); never the secret.
CLIENT_AUTH_FAILED = "client.auth_failed"
KEY_ACTIVATED = "key.activated"
AUDIT_KEY_CREATED = "audit.key_created"
AUDIT_PURGED = "audit.purged"
# RFC 7591/7592 dynamic clients: data holds the public metadata and token hashes, never a secret.
CLIENT_REGISTERED = "client.registered"
CLIENT_UPDATED = "client.updated"
CLIENT_DELETED = "client.deleted"
# An operator's write to the chain with `portcullis registry` (app/cli/registry_audit.py): who, the command
# (no keys), the chain id and the transaction hashes.
OPERATOR_REGISTRY_WRITE = "operator.registry_write"
# Delegations to trading bots (docs/DELEGATION.md): each with the delegate key's RFC 7638 thumbprint.
DELEGATION_CREATED = "delegation.created"
DELEGATION_USED = "delegation.used"
DELEGATION_REFUSED = "delegation.refused"
DELEGATION_REVOKED = "delegation.revoked"

# Every event type the code writes, in the order of docs/AUDIT.md's catalogue, which documents each
# (tests/audit/test_event_catalogue.py holds the two together).
EVENT_TYPES = (
    NONCE_ISSUED,
    SIGNIN_SUCCEEDED,
    SIGNIN_FAILED,
    RISK_LOCKED,
    TOKEN_REFRESHED,
    TOKEN_REFRESH_FAILED,
    TOKEN_FAMILY_REVOKED,
    SUBJECT_REVOKED,
    TOKEN_INTROSPECTED,
    SERVICE_TOKEN_ISSUED,
    SESSION_LOGGED_OUT,
    AUTHORIZATION_PUSHED,
    AUTHORIZATION_GRANTED,
    AUTHORIZATION_DENIED,
    CODE_REDEEMED,
    CODE_REUSED,
    CODE_REDEEM_FAILED,
    CHAIN_CHANGE,
    KEY_ACTIVATED,
    AUDIT_KEY_CREATED,
    AUDIT_PURGED,
    CLIENT_REGISTERED,
    CLIENT_UPDATED,
    CLIENT_DELETED,
    CLIENT_AUTH_FAILED,
    OPERATOR_REGISTRY_WRITE,
    DELEGATION_CREATED,
    DELEGATION_USED,
    DELEGATION_REFUSED,
    DELEGATION_REVOKED,
)

SUCCESS = "success"
FAILURE = "failure"

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def request_id_or_none(value: str | None) -> str | None:
    """A client-supplied request id is kept only if it is short and plain (it ends up in the log)."""
    return value if value is not None and _REQUEST_ID.fullmatch(value) else None


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """Who is asking, as the HTTP face saw it (or the CLI: operator set, no IP)."""

    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    operator: str | None = None


def ts_ms(t: datetime) -> str:
    """RFC 3339 UTC with milliseconds: the one timestamp form the log hashes."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class Auditor:
    """Turns what happened into AuditRecords, applying the privacy settings. One per app."""

    def __init__(self, settings: Settings, clock: Clock, secret: bytes) -> None:
        self.node = settings.node_id
        self.ip_mode = settings.audit_ip
        self.nonce_sample_rate = settings.audit_nonce_sample_rate
        self.clock = clock
        self._ip_key = hmac.new(secret, b"portcullis audit ip v1", hashlib.sha256).digest()

    def event(
        self,
        type: str,
        outcome: str,
        meta: RequestMeta,
        *,
        reason: str | None = None,
        actor: str | None = None,
        client_id: str | None = None,
        session: str | None = None,
        kid: str | None = None,
        data: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditRecord:
        logs.note(client_id=client_id, subject=actor)  # who the request's log lines are about
        return AuditRecord(
            ts=ts_ms(at or self.clock.now()),
            type=type,
            outcome=outcome,
            node=self.node,
            reason=reason,
            actor=actor or (f"operator:{meta.operator}" if meta.operator else None),
            client_id=client_id,
            request_id=meta.request_id,
            ip=self._ip(meta.ip),
            ua_hash=sha256_hex(meta.user_agent) if meta.user_agent else None,
            session_hash=sha256_hex(session) if session else None,
            kid=kid,
            data=data or {},
        )

    def network(self, ip: str | None) -> str | None:
        """The key the log stores for a client IP (per PORTCULLIS_AUDIT_IP), as the risk engine matches it."""
        return self._ip(ip)

    def _ip(self, ip: str | None) -> str | None:
        if not ip:
            return None
        if self.ip_mode == "full":
            return ip
        if self.ip_mode == "hashed":
            return hmac.new(self._ip_key, ip.encode(), hashlib.sha256).hexdigest()
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        prefix = 24 if addr.version == 4 else 48
        return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
