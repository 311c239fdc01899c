"""The authorization endpoint (RFC 6749 section 4.1) with pushed requests (RFC 9126) and the wallet
interaction behind it: the hosted page signs in with EIP-4361, shows consent, and the code goes back to the
client with ``state`` and ``iss`` (RFC 9207).

Three steps, each single-use and atomic in storage:
1. ``begin``: take the pushed request (or check the one sent in the query), issue the SIWE nonce bound to it
   and a browser-binding secret (a cookie), and describe the page.
2. ``sign_in``: the wallet's signed message goes through every sign-in check (app.oauth.signin.prove); the
   nonce is consumed and the proven grant kept.
3. ``consent``: allow issues a code (at most 60 s, single use); deny sends ``access_denied``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from app.audit import events
from app.errors import (
    AccessDenied,
    InvalidRequest,
    InvalidRequestUri,
    OAuthError,
    SignInRejected,
)
from app.oauth import consent, grant_json, signin
from app.oauth.authz_request import (
    AuthorizationRequest,
    PageError,
    Trusted,
    check_client_and_redirect,
    check_request,
)
from app.oauth.clients import Client
from app.oauth.provider import Provider, secret_hash
from app.oidc.tokens import Grant
from app.storage.authz_records import (
    AuthzRequestRecord,
    CodeRecord,
    Interaction,
    InteractionUnavailable,
    RequestUriUnavailable,
)
from app.storage.records import NonceUnavailable

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
MAX_HANDLE = 256

_REQUEST_URI_REASONS = {
    "unknown": "the request_uri is unknown",
    "used": "the request_uri has already been used",
    "expired": "the request_uri has expired; push the request again",
    "other_client": "the request_uri was pushed by another client",
}
_INTERACTION_REASONS = {
    "unknown": "this sign-in is unknown or has ended; start again from the application",
    "expired": "this sign-in has expired; start again from the application",
    "finished": "this sign-in has already finished",
    "not_authenticated": "sign in with the wallet first",
    "authenticated": "this sign-in has already been completed with a wallet",
}


class RedirectError(Exception):
    """An error to send back to the client's (trusted) redirect URI, with ``state`` and ``iss``."""

    def __init__(self, error: OAuthError, redirect_uri: str, state: str | None) -> None:
        super().__init__(error.description)
        self.error = error
        self.redirect_uri = redirect_uri
        self.state = state

    def location(self, issuer: str) -> str:
        params = {"error": self.error.error, "error_description": self.error.description[:300]}
        return with_query(self.redirect_uri, params, self.state, issuer)


class InteractionError(OAuthError):
    """The browser step cannot go on: unknown, expired, finished, or bound to another browser."""

    error = "invalid_request"
    status = 400


def with_query(uri: str, params: Mapping[str, str], state: str | None, issuer: str) -> str:
    """``uri`` with the response parameters added to its query (RFC 6749 4.1.2: keep what it already has)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += list(params.items())
    if state is not None:
        query.append(("state", state))
    query.append(("iss", issuer))  # RFC 9207 section 2
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True, slots=True)
class Pushed:
    request_uri: str
    expires_in: int

    def to_json(self) -> dict[str, Any]:
        return {"request_uri": self.request_uri, "expires_in": self.expires_in}


def _requires_par(p: Provider, client: Client) -> bool:
    return p.settings.require_par or client.require_pushed_authorization_requests


def _known_scopes(p: Provider) -> frozenset[str]:
    return frozenset(p.trading_policy.scopes_supported("wallet"))


async def push(
    p: Provider, client: Client, form: Mapping[str, str], dpop_jkt: str | None, meta: events.RequestMeta
) -> Pushed:
    """RFC 9126 section 2: the authenticated client's request, checked now, kept under a one-time URI."""
    if "request_uri" in form:
        raise InvalidRequest("request_uri must not be sent to the pushed authorization request endpoint")
    try:
        trusted = check_client_and_redirect(form, p.client_registry, client_id=client.client_id)
    except PageError as exc:
        raise exc.error from None
    request = check_request(form, trusted, known_scopes=_known_scopes(p))
    if dpop_jkt is not None:
        if request.dpop_jkt is not None and request.dpop_jkt != dpop_jkt:
            raise InvalidRequest("dpop_jkt does not match the key of the DPoP proof (RFC 9449 section 10.1)")
        request = replace(request, dpop_jkt=dpop_jkt)
    now = p.clock.now()
    handle = p.entropy.token(32)
    ttl = p.settings.par_ttl_seconds
    record = AuthzRequestRecord(
        request_id=p.entropy.token(16),
        client_id=client.client_id,
        params=request.to_json(),
        pushed=True,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    audit = p.auditor.event(
        events.AUTHORIZATION_PUSHED,
        events.SUCCESS,
        meta,
        client_id=client.client_id,
        data={"request_id": record.request_id, "scope": request.scope},
        at=now,
    )
    await p.authz.push(record, secret_hash(handle), audit)
    return Pushed(REQUEST_URI_PREFIX + handle, ttl)


@dataclass(frozen=True, slots=True)
class Started:
    """What the HTTP face needs to render the hosted page and bind it to this browser."""

    interaction_id: str
    browser_secret: str
    view: dict[str, Any]
    expires_at: datetime


async def begin(p: Provider, query: Mapping[str, str], meta: events.RequestMeta) -> Started:
    """GET /authorize. Raises PageError (nothing trusted yet) or RedirectError (back to the client)."""
    now = p.clock.now()
    interaction_id, browser_secret = p.entropy.token(32), p.entropy.token(32)
    nonce = p.entropy.alphanumeric(signin.NONCE_LENGTH)
    handles = Interaction(
        interaction_hash=secret_hash(interaction_id),
        browser_hash=secret_hash(browser_secret),
        nonce_hash=secret_hash(nonce),
        expires_at=now + timedelta(seconds=p.settings.nonce_ttl_seconds),
    )
    request_uri = query.get("request_uri")
    if request_uri is not None:
        request, client = await _take_pushed(p, query, request_uri, now, handles)
    else:
        request, client = _direct(p, query)
        record = AuthzRequestRecord(
            request_id=p.entropy.token(16),
            client_id=client.client_id,
            params=request.to_json(),
            pushed=False,
            created_at=now,
            expires_at=handles.expires_at,
            started_at=now,
            browser_hash=handles.browser_hash,
            siwe_nonce_hash=handles.nonce_hash,
        )
        await p.authz.start(record, handles)
    return Started(
        interaction_id,
        browser_secret,
        _view(p, client, request, interaction_id, nonce, now),
        handles.expires_at,
    )


async def _take_pushed(
    p: Provider, query: Mapping[str, str], request_uri: str, now: datetime, handles: Interaction
) -> tuple[AuthorizationRequest, Client]:
    client_id = query.get("client_id")
    if not client_id:
        raise PageError(InvalidRequest("client_id is required with request_uri (RFC 9126 section 4)"))
    client = p.client_registry.get(client_id)
    if client is None:
        raise PageError(InvalidRequest("the client is not registered"))
    if not request_uri.startswith(REQUEST_URI_PREFIX) or len(request_uri) > MAX_HANDLE:
        raise PageError(InvalidRequestUri("request_uri was not issued by this server"))
    handle = request_uri.removeprefix(REQUEST_URI_PREFIX)
    try:
        record = await p.authz.take_pushed(secret_hash(handle), client_id, now, handles)
    except RequestUriUnavailable as exc:
        raise PageError(InvalidRequestUri(_REQUEST_URI_REASONS[exc.reason])) from None
    return AuthorizationRequest.from_json(record.params), client


def _direct(p: Provider, query: Mapping[str, str]) -> tuple[AuthorizationRequest, Client]:
    trusted = check_client_and_redirect(query, p.client_registry)
    if _requires_par(p, trusted.client):
        raise _redirect(
            InvalidRequest("this client must push its authorization requests (PAR, RFC 9126)"), trusted
        )
    try:
        return check_request(query, trusted, known_scopes=_known_scopes(p)), trusted.client
    except OAuthError as exc:
        raise _redirect(exc, trusted) from None


def _redirect(error: OAuthError, trusted: Trusted) -> RedirectError:
    return RedirectError(error, trusted.redirect_uri, trusted.state)


def _view(
    p: Provider, client: Client, request: AuthorizationRequest, interaction_id: str, nonce: str, now: datetime
) -> dict[str, Any]:
    s = p.settings
    name = client.client_name or client.client_id
    base = f"/authorize/interactions/{interaction_id}"
    return {
        "interaction": interaction_id,
        "operator": s.operator_name,
        "endpoints": {
            "signin": f"{base}/signin",
            "consent": f"{base}/consent",
            "back": f"{base}/back",
            # a passkey step-up's challenge (app.http.mfa): the page asks for it after the wallet signed
            "webauthn_assertion": "/mfa/webauthn/assertion",
        },
        "client": {
            "client_id": client.client_id,
            "client_name": client.client_name,
            # where the person returns: the host of the checked redirect URI (RFC 6749 3.1.2)
            "domain": urlsplit(request.redirect_uri).netloc,
        },
        "siwe": {
            "scheme": signin.siwe_scheme(p),
            "domain": s.siwe_domain,
            "uri": s.siwe_uri,
            "version": "1",
            "chain_ids": list(s.chain_ids),
            "nonce": nonce,
            "issued_at": signin.rfc3339(now),
            "expiration_time": signin.rfc3339(now + timedelta(seconds=s.nonce_ttl_seconds)),
            "statement": f"Sign in to {name} through Portcullis.",
        },
        "scopes": consent.scope_lines(p.trading_policy, request.scope),
        "authorization_details": consent.detail_lines(request.authorization_details),
        "compliance": consent.compliance_lines(p.trading_policy, request.scope),
        "step_up": {"acr_values": request.acr_values.split()} if request.acr_values else None,
    }


async def _interaction(
    p: Provider,
    interaction_id: str,
    browser_secret: str | None,
    now: datetime,
    *,
    allow_expired: bool = False,
) -> AuthzRequestRecord:
    if not interaction_id or len(interaction_id) > MAX_HANDLE:
        raise InteractionError(_INTERACTION_REASONS["unknown"])
    record = await p.authz.find_interaction(secret_hash(interaction_id))
    if record is None or record.browser_hash is None:
        raise InteractionError(_INTERACTION_REASONS["unknown"])
    # The page's calls must come from the browser that opened it (a phished link opened elsewhere fails).
    if browser_secret is None or not hmac.compare_digest(secret_hash(browser_secret), record.browser_hash):
        raise InteractionError(
            "this sign-in was started in another browser; start again from the application"
        )
    if record.finished_at is not None:
        raise InteractionError(_INTERACTION_REASONS["finished"])
    if record.expires_at <= now and not allow_expired:
        raise InteractionError(_INTERACTION_REASONS["expired"])
    return record


async def client_of(p: Provider, interaction_id: str) -> Client | None:
    """The client an interaction is for (None if unknown): whom the page's words name."""
    if not interaction_id or len(interaction_id) > MAX_HANDLE:
        return None
    record = await p.authz.find_interaction(secret_hash(interaction_id))
    return p.client_registry.get(record.client_id) if record is not None else None


@dataclass(frozen=True, slots=True)
class WalletProof:
    """What the hosted page posts after the wallet signed."""

    message: str
    signature: str
    second_factor: Any = None
    device_id: str | None = None


async def sign_in(
    p: Provider, interaction_id: str, browser_secret: str | None, proof: WalletProof, meta: events.RequestMeta
) -> dict[str, Any]:
    """Step 2: the wallet signature, through every sign-in check; answers the consent screen's content."""
    record = await _interaction(p, interaction_id, browser_secret, p.clock.now())
    if record.authenticated_at is not None:
        raise InteractionError(_INTERACTION_REASONS["authenticated"])
    request = AuthorizationRequest.from_json(record.params)
    req = signin.SignInRequest(
        text=proof.message,
        signature=proof.signature,
        client_id=record.client_id,
        scope=request.scope,
        second_factor=proof.second_factor,
        authorization_details=list(request.authorization_details),
        device_id=proof.device_id,
        acr_values=request.acr_values,
        max_age=request.max_age,
    )

    async def run(now: datetime, attempt: signin.Attempt) -> dict[str, Any]:
        attempt.client = record.client_id
        proven = await signin.prove(
            p, req, meta, now, attempt, client=record.client_id, nonce_hash=record.siwe_nonce_hash
        )
        grant = proven.grant
        if request.resource:
            grant = replace(grant, audience=_audience(p, request))
        audit = p.auditor.event(
            events.SIGNIN_SUCCEEDED,
            events.SUCCESS,
            meta,
            actor=grant.subject,
            client_id=record.client_id,
            data={**attempt.data, "scope": grant.scope, "acr": grant.acr, "request_id": record.request_id},
            at=now,
        )
        assert record.siwe_nonce_hash is not None
        try:
            await p.authz.authenticate(
                record.request_id, record.siwe_nonce_hash, now, grant_json.dumps(grant), audit
            )
        except NonceUnavailable as exc:
            raise SignInRejected("nonce_mismatch", 401, signin.NONCE_REASONS[exc.reason]) from None
        except InteractionUnavailable as exc:
            raise InteractionError(_INTERACTION_REASONS[exc.reason]) from None
        return _consent_view(p, grant, request, now, attempt.data.get("policy"))

    return await signin.attempt_sign_in(p, meta, record.client_id, run)


def _audience(p: Provider, request: AuthorizationRequest) -> tuple[str, ...]:
    """RFC 8707: the named resource; our own userinfo stays reachable when ``openid`` was granted."""
    own = p.policy.audience
    return (*request.resource, own) if own not in request.resource else request.resource


def _consent_view(
    p: Provider,
    grant: Grant,
    request: AuthorizationRequest,
    now: datetime,
    policy_audit: dict[str, Any] | None,
) -> dict[str, Any]:
    client = p.client_registry.get(request.client_id)
    s = p.settings
    return {
        "consent": {
            "account": grant.address,
            "chain_id": grant.chain_id,
            "client": {
                "client_id": request.client_id,
                "client_name": client.client_name if client else None,
                "domain": urlsplit(request.redirect_uri).netloc,
            },
            "scopes": consent.scope_lines(p.trading_policy, grant.scope),
            "authorization_details": consent.detail_lines(grant.authorization_details, policy_audit),
            "lifetime": consent.lifetime_line(
                now,
                grant.expiry(now, timedelta(seconds=s.access_token_ttl_seconds)),
                grant.expiry(now, timedelta(seconds=s.refresh_token_ttl_seconds)),
            ),
            "compliance": consent.compliance_lines(p.trading_policy, grant.scope, grant.compliance),
            "acr": grant.acr,
            "amr": list(grant.amr),
        }
    }


# The longest failure name (app.http.page_text.Failure) the "went back" audit entry keeps.
BACK_REASON_MAX = 40


async def back(
    p: Provider,
    interaction_id: str,
    browser_secret: str | None,
    failure: str | None,
    meta: events.RequestMeta,
) -> str:
    """ "Back to the client": end the interaction, before or after a sign-in attempt, and send the client
    ``access_denied`` with its ``state`` and ``iss`` (RFC 6749 4.1.2.1, RFC 9207) so it is not left waiting.
    Once only. Works past the interaction's expiry too: the person still has to get back."""
    now = p.clock.now()
    record = await _interaction(p, interaction_id, browser_secret, now, allow_expired=True)
    request = AuthorizationRequest.from_json(record.params)
    grant = grant_json.loads(record.grant) if record.grant else None
    data: dict[str, Any] = {"request_id": record.request_id}
    if failure:
        data["page_failure"] = failure[:BACK_REASON_MAX]
    left = p.auditor.event(
        events.AUTHORIZATION_DENIED,
        events.SUCCESS,
        meta,
        reason="user_went_back",
        actor=grant.subject if grant else None,
        client_id=record.client_id,
        data=data,
        at=now,
    )
    try:
        await p.authz.abandon(record.request_id, now, left)
    except InteractionUnavailable as exc:
        raise InteractionError(_INTERACTION_REASONS[exc.reason]) from None
    error = AccessDenied("the user went back to the application without signing in")
    return RedirectError(error, request.redirect_uri, request.state).location(p.settings.issuer)


async def decide(
    p: Provider, interaction_id: str, browser_secret: str | None, approve: bool, meta: events.RequestMeta
) -> str:
    """Step 3: the user's answer. Returns where the browser goes next: the client, with a code or an error."""
    now = p.clock.now()
    record = await _interaction(p, interaction_id, browser_secret, now)
    if record.authenticated_at is None or record.grant is None:
        raise InteractionError(_INTERACTION_REASONS["not_authenticated"])
    request = AuthorizationRequest.from_json(record.params)
    grant = grant_json.loads(record.grant)
    issuer = p.settings.issuer
    try:
        if not approve:
            denied = p.auditor.event(
                events.AUTHORIZATION_DENIED,
                events.SUCCESS,
                meta,
                reason="user_denied",
                actor=grant.subject,
                client_id=record.client_id,
                data={"request_id": record.request_id},
                at=now,
            )
            await p.authz.finish(record.request_id, now, None, denied)
            error = AccessDenied("the user refused the request")
            return RedirectError(error, request.redirect_uri, request.state).location(issuer)
        code = p.entropy.token(32)
        stored = CodeRecord(
            code_hash=secret_hash(code),
            request_id=record.request_id,
            client_id=record.client_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            dpop_jkt=request.dpop_jkt,
            oidc_nonce=request.nonce,
            grant=record.grant,
            issued_at=now,
            expires_at=now + timedelta(seconds=p.settings.authorization_code_ttl_seconds),
        )
        issued = p.auditor.event(
            events.AUTHORIZATION_GRANTED,
            events.SUCCESS,
            meta,
            actor=grant.subject,
            client_id=record.client_id,
            data={
                "request_id": record.request_id,
                "code_hash": stored.code_hash,
                "scope": grant.scope,
                "authorization_details": len(grant.authorization_details),
            },
            at=now,
        )
        await p.authz.finish(record.request_id, now, stored, issued)
    except InteractionUnavailable as exc:
        raise InteractionError(_INTERACTION_REASONS[exc.reason]) from None
    return with_query(request.redirect_uri, {"code": code}, request.state, issuer)
