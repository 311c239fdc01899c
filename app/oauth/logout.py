"""OpenID Connect RP-Initiated Logout 1.0: the session an ID token names ends, then back to the RP.

Portcullis keeps no browser session of its own: a session is a refresh-token family, named in tokens by
``sid``. So what is logged out is what the ``id_token_hint`` names. Its signature is checked against our
published keys and its ``iss`` against ours; its ``exp`` is not checked (section 2: an expired ID token is
accepted for logout). ``client_id``, when given with a hint, must be the hint's ``aud`` (section 2).

Without a hint nothing identifies a session, and there is no browser session to ask the End-User about,
so nothing is revoked: the End-User sees the signed-out page, never a redirection (section 3: without
``id_token_hint`` the OP MUST NOT redirect). A ``post_logout_redirect_uri`` must be registered for the
client exactly, with no normalisation (section 3); one that is not is an error, and by section 4 a
failed check ends nothing and redirects nowhere. ``ui_locales`` is accepted and ignored.

The checks (``parse_request``, ``check_id_token_hint``, ``decide``) are pure; ``end_session`` adds the
revocation and the audit entries.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import jwt

from app.audit import events
from app.errors import InvalidRequest
from app.oauth.clients import Client, ClientRegistry
from app.oauth.provider import Provider
from app.oidc.keys import KeyRing

MAX_ID_TOKEN_HINT = 8192
MAX_PARAMETER = 2048
ID_TOKEN_TYP = "JWT"  # noqa: S105 (app.oidc.tokens.mint_id_token writes it; access tokens are at+jwt)
LOGOUT_REASON = "rp_initiated_logout"


class LogoutRejected(InvalidRequest):
    """Section 4: a check failed. Nothing is logged out, nobody is redirected; ``reason`` goes to the log."""

    def __init__(self, reason: str, description: str, *, debug: str | None = None) -> None:
        super().__init__(description, debug=debug)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    """Section 2 parameters (``ui_locales`` is read and dropped)."""

    id_token_hint: str | None = None
    client_id: str | None = None
    post_logout_redirect_uri: str | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class IdTokenHint:
    """What a verified ``id_token_hint`` says: the RP it was issued to, who, and which session."""

    client_id: str
    subject: str
    session_id: str | None


@dataclass(frozen=True, slots=True)
class LogoutDecision:
    """What to do: end ``session_id`` (if any), then redirect to ``redirect_to`` or show the signed-out page.

    ``return_to`` is a registered URI the page may link to when redirecting is not allowed (no hint).
    """

    client: Client | None
    client_id: str | None
    hint: IdTokenHint | None
    redirect_to: str | None
    return_to: str | None

    @property
    def session_id(self) -> str | None:
        return self.hint.session_id if self.hint is not None else None


def parse_request(params: Mapping[str, str]) -> LogoutRequest:
    """The section 2 parameters; empty values count as absent. ``params`` must be free of repeats."""
    values: dict[str, str | None] = {}
    for name in ("id_token_hint", "client_id", "post_logout_redirect_uri", "state"):
        value = params.get(name) or None
        limit = MAX_ID_TOKEN_HINT if name == "id_token_hint" else MAX_PARAMETER
        if value is not None and len(value) > limit:
            raise LogoutRejected("invalid_request", f"{name} is longer than {limit} characters")
        values[name] = value
    return LogoutRequest(**values)


def _reject_hint(description: str, debug: str | None = None) -> LogoutRejected:
    return LogoutRejected("invalid_id_token_hint", f"id_token_hint {description}", debug=debug)


def check_id_token_hint(ring: KeyRing, issuer: str, token: str) -> IdTokenHint:
    """An ID token this server issued (signature, ``typ``, ``iss``); expired ones are accepted (section 2)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise _reject_hint("is not a JWT") from None
    if header.get("typ") != ID_TOKEN_TYP:
        raise _reject_hint("is not an ID token", debug=f"typ={header.get('typ')!r}")
    jwk = next((k for k in ring.published if k["kid"] == header.get("kid")), None)
    if jwk is None or header.get("alg") != jwk["alg"]:
        # Also the fate of a token signed by a key retired long enough ago to be no longer published.
        raise _reject_hint("was not signed by a current key of this server")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            jwt.PyJWK(jwk).key,
            algorithms=[jwk["alg"]],
            issuer=issuer,
            options={
                "require": ["iss", "sub", "aud"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
            },
        )
    except jwt.InvalidTokenError as exc:
        raise _reject_hint("is invalid", debug=str(exc)) from None
    aud, sub, sid = claims["aud"], claims["sub"], claims.get("sid")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if not isinstance(aud, str) or not aud or not isinstance(sub, str):
        raise _reject_hint("does not name one client (aud) and subject (sub)")
    if sid is not None and (not isinstance(sid, str) or not sid):
        raise _reject_hint("has a malformed sid")
    return IdTokenHint(client_id=aud, subject=sub, session_id=sid)


def with_state(uri: str, state: str | None) -> str:
    """``uri`` with ``state`` added to its query (section 3), the registered query kept as it is."""
    if state is None:
        return uri
    parts = urlsplit(uri)
    added = urlencode({"state": state})
    return urlunsplit(parts._replace(query=f"{parts.query}&{added}" if parts.query else added))


def _registered(client: Client | None, uri: str) -> bool:
    """Exact, case-sensitive string match (section 3): no normalisation of any kind."""
    if client is None:
        return False
    return any(hmac.compare_digest(uri.encode(), r.encode()) for r in client.post_logout_redirect_uris)


def decide(request: LogoutRequest, hint: IdTokenHint | None, registry: ClientRegistry) -> LogoutDecision:
    """Sections 2 and 3, once the hint (if any) has been verified."""
    if hint is not None and request.client_id is not None and request.client_id != hint.client_id:
        raise LogoutRejected(
            "client_mismatch", "client_id does not match the client the id_token_hint was issued to"
        )
    client_id = request.client_id or (hint.client_id if hint is not None else None)
    client = registry.get(client_id) if client_id is not None else None
    uri = request.post_logout_redirect_uri
    redirect_to = return_to = None
    if uri is not None:
        if not _registered(client, uri):
            raise LogoutRejected(
                "unregistered_redirect_uri",
                "post_logout_redirect_uri is not registered for this client"
                if client_id is not None
                else "post_logout_redirect_uri needs an id_token_hint or a client_id",
                debug=f"client {client_id!r}, uri {uri[:200]!r}",
            )
        if hint is not None:
            redirect_to = with_state(uri, request.state)
        else:
            return_to = with_state(uri, request.state)
    return LogoutDecision(client, client_id, hint, redirect_to, return_to)


def _known_client_id(p: Provider, client_id: str | None) -> str | None:
    """A client id fit for the log: one we know (an unknown one is whatever the request said)."""
    if client_id is None:
        return None
    known = p.client_registry.get(client_id) is not None or client_id in p.settings.clients
    return client_id if known else None


async def end_session(p: Provider, request: LogoutRequest, meta: events.RequestMeta) -> LogoutDecision:
    """Check the request, end the session the hint names (audited), and say where the End-User goes."""
    try:
        hint = (
            check_id_token_hint(p.keys.ring, p.settings.issuer, request.id_token_hint)
            if request.id_token_hint is not None
            else None
        )
        decision = decide(request, hint, p.client_registry)
    except LogoutRejected as exc:
        await p.audit_log.record(
            p.auditor.event(
                events.SESSION_LOGGED_OUT,
                events.FAILURE,
                meta,
                reason=exc.reason,
                client_id=_known_client_id(p, request.client_id),
                data={"detail": exc.description},
            )
        )
        raise
    if decision.hint is not None and decision.session_id is not None:
        now = p.clock.now()
        audit = p.auditor.event(
            events.SESSION_LOGGED_OUT,
            events.SUCCESS,
            meta,
            reason=LOGOUT_REASON,
            actor=decision.hint.subject,
            client_id=decision.hint.client_id,
            session=decision.session_id,
            data={"redirected": decision.redirect_to is not None},
            at=now,
        )
        await p.store.revoke_family(decision.session_id, now, LOGOUT_REASON, audit)
    return decision
