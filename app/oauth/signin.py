"""Sign-In with Ethereum as a grant: nonce issuance and ``/siwe/verify`` as a pipeline of named checks.

Order matters (and is tested): every message check and the signature come first; only a message that a
wallet really signed may consume its nonce, so a forged signature can never burn a user's valid nonce.
The nonce is consumed and the refresh token stored in one transaction.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from app import siwe
from app.audit import events
from app.chain import wallets
from app.chain.types import ChainUnavailable
from app.errors import InvalidRequest, OAuthError, SignInRejected, TemporarilyUnavailable
from app.mfa import acr
from app.oauth import compliance, origins, risk, stepup, trading
from app.oauth.provider import Provider, secret_hash
from app.oauth.tokens import TokenResponse, issue_tokens
from app.oidc.tokens import Grant, did_pkh
from app.policy.facts import AuthContext
from app.policy.rar import parse_authorization_details
from app.risk.guard import ADMITTED, Gate
from app.storage.records import NonceUnavailable, RefreshRecord

# 22 alphanumerics carry 131 bits (EIP-4361 requires >= 8 alphanumerics; we want >= 96 bits).
T = TypeVar("T")

NONCE_LENGTH = 22
MAX_OIDC_NONCE = 255

NONCE_REASONS = {
    "unknown": "the nonce was not issued by this server",
    "used": "the nonce has already been used",
    "expired": "the nonce has expired",
    "other_client": "the nonce was issued to another client",
}


@dataclass(frozen=True, slots=True)
class NonceOffer:
    nonce: str
    scheme: str
    domain: str
    uri: str
    chain_id: int
    issued_at: datetime
    expiration_time: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "nonce": self.nonce,
            # EIP-4361: a message without "scheme://" before the domain means https.
            "scheme": self.scheme,
            "domain": self.domain,
            "uri": self.uri,
            "chain_id": self.chain_id,
            "issued_at": rfc3339(self.issued_at),
            "expiration_time": rfc3339(self.expiration_time),
        }


def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


async def issue_nonce(
    p: Provider,
    client_id: str | None,
    oidc_nonce: str | None,
    meta: events.RequestMeta,
    gate: Gate = ADMITTED,
    *,
    origin: str | None = None,
) -> NonceOffer:
    """A fresh nonce for ``client_id``, stored only once ``gate`` admits the request (app.risk.guard).

    ``origin``: the browser page that asks (its ``Origin`` header); it must be one of the client's.
    """
    client = p.check_client(client_id)
    p.check_origin(origin, client)
    check_oidc_nonce(oidc_nonce)
    now = p.clock.now()
    nonce = p.entropy.alphanumeric(NONCE_LENGTH)
    nonce_hash = secret_hash(nonce)
    expires = now + timedelta(seconds=p.settings.nonce_ttl_seconds)
    audit = None
    if p.auditor.nonce_sample_rate and p.entropy.chance(p.auditor.nonce_sample_rate):
        audit = p.auditor.event(
            events.NONCE_ISSUED,
            events.SUCCESS,
            meta,
            client_id=client,
            data={"nonce_hash": nonce_hash},
            at=now,
        )
    await p.store.issue_nonce(nonce_hash, client, oidc_nonce, now, expires, audit, before_commit=gate.wait)
    s = p.settings
    registered = p.client_registry.get(client)
    if registered is not None and registered.siwe_domains:
        # The client's dApp asks for the signature: its own origin goes into the message.
        domain = registered.siwe_domains[0]
        scheme = origins.dapp_scheme(domain)
        return NonceOffer(nonce, scheme, domain, f"{scheme}://{domain}", s.default_chain_id, now, expires)
    return NonceOffer(nonce, siwe_scheme(p), s.siwe_domain, s.siwe_uri, s.default_chain_id, now, expires)


def siwe_scheme(p: Provider) -> str:
    return p.settings.issuer.split("://", 1)[0]


def check_oidc_nonce(oidc_nonce: str | None) -> None:
    if oidc_nonce is not None and not (0 < len(oidc_nonce) <= MAX_OIDC_NONCE and oidc_nonce.isprintable()):
        raise InvalidRequest(f"oidc_nonce must be 1 to {MAX_OIDC_NONCE} printable characters")


def expectations(p: Provider) -> siwe.Expectations:
    s = p.settings
    return siwe.Expectations(
        domain=s.siwe_domain,
        scheme=siwe_scheme(p),
        uri=s.siwe_uri,
        chain_ids=frozenset(s.chain_ids),
        max_age=timedelta(seconds=s.nonce_ttl_seconds),
        clock_skew=timedelta(seconds=s.clock_skew_seconds),
    )


def check_message(
    p: Provider, text: str, now: datetime, siwe_domains: tuple[str, ...] = ()
) -> siwe.SiweMessage:
    """Parse and check every field of the signed text (EIP-4361), no signature yet.

    ``siwe_domains``: a registered client's own dApp domains. Then the message must name one of them, and
    its URI must be on that same origin (EIP-4361: the domain is the origin that asked for the signature).
    """
    try:
        message = siwe.parse(text, max_bytes=p.settings.max_message_bytes)
        expect = expectations(p)
        if siwe_domains:
            expect = dataclasses.replace(expect, domain=None, uri=None, scheme=None)
        siwe.check_fields(message, expect, now)
    except siwe.SiweError as exc:
        raise SignInRejected(exc.code, exc.status, str(exc)) from None
    if siwe_domains:
        _check_client_origin(message, siwe_domains)
    return message


def _check_client_origin(message: siwe.SiweMessage, domains: tuple[str, ...]) -> None:
    if message.domain not in domains:
        raise SignInRejected(
            "domain_mismatch", 401, "domain: not one of this client's registered dApp domains"
        )
    scheme = message.scheme or "https"
    uri = urlsplit(message.uri)
    local = origins.dapp_scheme(message.domain) == "http"
    if scheme not in ("https", "http") or (scheme == "http" and not local):
        raise SignInRejected("scheme_mismatch", 401, "scheme: a dApp origin must use https")
    if uri.scheme != scheme or uri.netloc != message.domain:
        raise SignInRejected("uri_mismatch", 401, "uri: must be on the origin named by the domain")


async def check_signature(p: Provider, text: str, message: siwe.SiweMessage, signature: str) -> str:
    """Who signed: "eoa" (EIP-191 recovery, no RPC), else "contract" (ERC-1271 / ERC-6492 by eth_call)."""
    try:
        siwe.check_eoa_signature(text, message, signature)
        return "eoa"
    except (siwe.InvalidSignature, siwe.MalformedSignature) as eoa_failure:
        chain = p.chains.get(message.chain_id)
        if chain is None:
            raise SignInRejected(eoa_failure.code, eoa_failure.status, str(eoa_failure)) from None
    raw = _signature_bytes(signature)
    digest = siwe.personal_message_hash(text.encode())
    config = chain.config
    try:
        valid = await wallets.contract_signature_valid(
            chain.rpc,
            message.address,
            digest,
            raw,
            gas_cap=config.call_gas_cap,
            seconds=config.signature_timeout_seconds,
        )
    except ChainUnavailable as exc:
        raise TemporarilyUnavailable(
            f"chain {message.chain_id} cannot be reached to check a smart-contract wallet signature",
            debug=str(exc),
        ) from None
    if not valid:
        raise SignInRejected(
            "invalid_signature",
            401,
            "the signature fits the address neither as an account key nor as an ERC-1271/ERC-6492 wallet",
        )
    return "contract"


def _signature_bytes(signature: str) -> bytes:
    body = signature.removeprefix("0x")
    if len(body) % 2 or len(body) > 2 * wallets.MAX_SIGNATURE_BYTES:
        raise SignInRejected("malformed_signature", 400, "the signature is not an even-length hex string")
    try:
        return bytes.fromhex(body)
    except ValueError:
        raise SignInRejected("malformed_signature", 400, "the signature is not hex") from None


@dataclass(frozen=True, slots=True)
class SignInRequest:
    """What POST /siwe/verify carries (docs/API.md)."""

    text: str
    signature: str
    client_id: str | None = None
    scope: str | None = None
    second_factor: Any = None  # {"type": "totp"|"recovery", "code"} or {"type": "webauthn", "credential"}
    authorization_details: Any = None  # RFC 9396: a JSON array (or its JSON text)
    device_id: str | None = None  # the client's stable device id (a cookie's value); only its hash is kept
    acr_values: str | None = None
    max_age: int | None = None
    origin: str | None = None  # the browser page's Origin header; None for a backend or the CLI


async def sign_in(
    p: Provider, req: SignInRequest, meta: events.RequestMeta, gate: Gate = ADMITTED
) -> TokenResponse:
    """The SIWE grant at POST /siwe/verify: prove the wallet, then consume the nonce and issue tokens.

    ``gate``: the request's admission (app.risk.guard), awaited before anything is written.
    """

    async def run(now: datetime, attempt: Attempt) -> TokenResponse:
        attempt.client = client = p.check_client(req.client_id)
        p.check_origin(req.origin, client)  # before any check of the message: a foreign page is refused
        registered = p.client_registry.get(client)
        domains = registered.siwe_domains if registered is not None else ()
        proven = await prove(p, req, meta, now, attempt, client=client, siwe_domains=domains, gate=gate)
        await gate.wait()
        return await _issue(p, proven, meta, now, attempt)

    return await attempt_sign_in(p, meta, req.client_id, run, gate)


async def attempt_sign_in(
    p: Provider,
    meta: events.RequestMeta,
    client_id: str | None,
    run: Callable[[datetime, Attempt], Awaitable[T]],
    gate: Gate = ADMITTED,
) -> T:
    """Run a sign-in; every refusal is recorded in the audit log with the check that failed.

    A request the guard refuses (``gate``) is answered 429 whatever ``run`` concluded, and records nothing.
    """
    now = p.clock.now()
    attempt = Attempt()
    try:
        result = await run(now, attempt)
    except OAuthError as exc:
        await gate.wait()
        p.metrics.signins.labels("failure", exc.error).inc()
        for lock in await p.guard.failed(ip=meta.ip):
            p.metrics.locks.labels(lock.what).inc()
            await p.audit_log.record(
                p.auditor.event(
                    events.RISK_LOCKED,
                    events.SUCCESS,
                    meta,
                    reason=f"{lock.what} failure spike",
                    data={"key_hash": events.sha256_hex(lock.key), "until": events.ts_ms(lock.until)},
                    at=now,
                )
            )
        await p.audit_log.record(
            p.auditor.event(
                events.SIGNIN_FAILED,
                events.FAILURE,
                meta,
                reason=exc.error,
                actor=attempt.actor,
                client_id=attempt.client or client_id,
                data={"detail": exc.description[:300], **attempt.data},
                at=now,
            )
        )
        raise
    p.metrics.signed_in.inc()
    await p.guard.redeem_nonce(meta.ip)
    return result


@dataclass(slots=True)
class Attempt:
    """What is known about a sign-in so far, for the failure's audit entry (claimed, not proven)."""

    client: str | None = None
    actor: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Proven:
    """A wallet sign-in that passed every check; its nonce is not consumed yet."""

    grant: Grant
    message: siwe.SiweMessage


async def prove(
    p: Provider,
    req: SignInRequest,
    meta: events.RequestMeta,
    now: datetime,
    attempt: Attempt,
    *,
    client: str,
    nonce_hash: str | None = None,
    siwe_domains: tuple[str, ...] = (),
    gate: Gate = ADMITTED,
) -> Proven:
    """Every check of a sign-in, in order: message, signature, nonce binding, compliance, second factor,
    RFC 9470 step-up, risk, policy. ``nonce_hash`` binds the message to one server nonce (the hosted page's
    authorization request); the nonce itself is consumed by the caller, in the transaction that uses it.
    Only the second factor writes (a used code, a challenge spent): ``gate`` is awaited before it.
    """
    text, signature = req.text, req.signature
    scopes = trading.requested_scopes(p, req.scope)
    details = parse_authorization_details(req.authorization_details)
    message = check_message(p, text, now, siwe_domains)
    attempt.actor = subject = did_pkh(message.chain_id, message.address)
    attempt.data = {"nonce_hash": secret_hash(message.nonce), "chain_id": message.chain_id}
    pending_risk = risk.begin_assessment(p, subject, meta, req.device_id, now)  # read beside what follows
    wallet = await check_signature(p, text, message, signature)
    attempt.data["wallet"] = wallet
    if nonce_hash is not None and secret_hash(message.nonce) != nonce_hash:
        raise SignInRejected("nonce_mismatch", 401, "the message does not carry this sign-in's nonce")
    decision = await compliance.require_eligible(p, message.chain_id, message.address)
    if decision is not None:
        attempt.data["compliance"] = {"block": decision.block_number, "degraded": list(decision.degraded)}
    if req.second_factor is not None:
        await gate.wait()
    verification = await stepup.prove_second_factor(p, subject, req.second_factor, meta)
    amr = verification.session_amr() if verification is not None else (acr.AMR_SIWE,)
    session_acr = verification.acr if verification is not None else acr.ACR_WALLET
    attempt.data["amr"] = list(amr)
    stepup.require(session_acr, now, now, req.acr_values, req.max_age)
    claim = compliance.token_claim(p, decision)
    assessment = await risk.assess_sign_in(p, pending_risk, wallet, claim)
    attempt.data["risk"] = assessment.to_audit()
    if req.device_id:
        attempt.data["device"] = events.sha256_hex(req.device_id)
    await risk.enforce(p, assessment, subject, session_acr)
    auth = AuthContext(acr=session_acr, amr=tuple(amr), auth_time=now)
    ruling = trading.for_sign_in(p, decision, scopes, details, auth, now)
    attempt.data["policy"] = ruling.to_audit()
    grant = Grant(
        address=message.address,
        chain_id=message.chain_id,
        client_id=client,
        scope=ruling.scope,
        auth_time=now,
        compliance=claim,
        not_after=_earliest(compliance.not_after(decision), trading.lifetime_cap(ruling, now)),
        amr=amr,
        acr=session_acr,
        authorization_details=tuple(ruling.granted_details),
        risk_level=assessment.level,
    )
    return Proven(grant, message)


async def _issue(
    p: Provider, proven: Proven, meta: events.RequestMeta, now: datetime, attempt: Attempt
) -> TokenResponse:
    grant, message, client = proven.grant, proven.message, proven.grant.client_id
    refresh_token = p.entropy.token(32)
    refresh = new_family_record(p, grant, secret_hash(refresh_token), now)
    grant = dataclasses.replace(grant, session_id=refresh.family_id)
    jti = p.entropy.token(16)
    audit = p.auditor.event(
        events.SIGNIN_SUCCEEDED,
        events.SUCCESS,
        meta,
        actor=grant.subject,
        client_id=client,
        session=refresh.family_id,
        kid=p.keys.ring.active.kid,
        data={**attempt.data, "scope": grant.scope, "jti": jti, "acr": grant.acr},
        at=now,
    )
    try:
        oidc_nonce = await p.store.complete_sign_in(secret_hash(message.nonce), client, now, refresh, audit)
    except NonceUnavailable as exc:
        raise SignInRejected("nonce_mismatch", 401, NONCE_REASONS[exc.reason]) from None
    p.metrics.issued["siwe"].inc()
    return issue_tokens(p, grant, now, refresh_token=refresh_token, oidc_nonce=oidc_nonce, jti=jti)


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return min(present) if present else None


def new_family_record(
    p: Provider, grant: Grant, token_hash: str, now: datetime, *, dpop_jkt: str | None = None
) -> RefreshRecord:
    """The first refresh token of a new session (family); ``dpop_jkt`` binds a public client's family."""
    return RefreshRecord(
        token_hash=token_hash,
        family_id=p.entropy.token(16),
        client_id=grant.client_id,
        subject=grant.subject,
        address=grant.address,
        chain_id=grant.chain_id,
        scope=grant.scope,
        auth_time=grant.auth_time,
        issued_at=now,
        expires_at=grant.expiry(now, timedelta(seconds=p.settings.refresh_token_ttl_seconds)),
        amr=" ".join(grant.amr),
        acr=grant.acr,
        authorization_details=json.dumps(list(grant.authorization_details), sort_keys=True),
        dpop_jkt=dpop_jkt,
    )
