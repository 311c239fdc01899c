"""Second-factor endpoints (docs/MFA.md). Account actions take the caller's access token (RFC 6750, or
RFC 9449 DPoP for a bound token), live by the rule userinfo applies (app.oauth.bearer); enrolling, removing
and issuing recovery codes need a recent strong sign-in (app.mfa.acr)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.audit.events import RequestMeta
from app.errors import InvalidRequest
from app.http.body import read_json_object, string_field
from app.http.errors import NO_STORE
from app.mfa import acr
from app.mfa.errors import MfaError
from app.oauth import bearer
from app.oauth.provider import Provider
from app.oauth.stepup import oauth_error

MetaOf = Callable[[Request], RequestMeta]


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    subject: str
    strong: bool  # a recent strong authentication (may enrol or remove factors)


async def _caller(request: Request, p: Provider) -> Caller:
    # RFC 7009 section 2.1: a revoked, logged-out or reuse-ended session's token manages no factors.
    claims = await bearer.access_claims(
        p,
        request.headers.get("authorization"),
        request.headers.getlist("dpop"),
        method=request.method,
        path=request.url.path,
    )
    now = p.clock.now()
    auth_time = datetime.fromtimestamp(int(claims.get("auth_time", 0)), UTC)
    enrolled = await p.mfa.has_second_factor(claims["sub"])
    strong = acr.recent_strong_auth(claims.get("amr", []), auth_time, now, enrolled=enrolled)
    return Caller(claims["sub"], strong)


def _json(value: Any, status: int = 200) -> Response:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return JSONResponse(_plain(value), status_code=status, headers=NO_STORE)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def mfa_routes(meta_of: MetaOf) -> list[Route]:
    def endpoint(fn: Callable[[Request, Provider, RequestMeta], Awaitable[Response]]) -> Any:
        async def handle(request: Request) -> Response:
            p: Provider = request.app.state.provider
            meta = meta_of(request)
            await p.guard.admit("mfa", ip=meta.ip)
            try:
                return await fn(request, p, meta)
            except MfaError as exc:
                raise oauth_error(exc) from None

        return handle

    @endpoint
    async def factors(request: Request, p: Provider, meta: RequestMeta) -> Response:
        caller = await _caller(request, p)
        return _json({"factors": [dataclasses.asdict(f) for f in await p.mfa.factors(caller.subject)]})

    @endpoint
    async def enrol_totp(request: Request, p: Provider, meta: RequestMeta) -> Response:
        caller = await _caller(request, p)
        body = await read_json_object(request, optional=True)
        label = string_field(body, "label") or "Authenticator app"
        enrolment = await p.mfa.enrol_totp(
            caller.subject, recent_strong_auth=caller.strong, label=label, meta=meta
        )
        return _json(enrolment, 201)

    @endpoint
    async def confirm_totp(request: Request, p: Provider, meta: RequestMeta) -> Response:
        caller = await _caller(request, p)
        body = await read_json_object(request)
        factor_id = string_field(body, "factor_id", required=True) or ""
        code = string_field(body, "code", required=True) or ""
        info = await p.mfa.confirm_totp(
            caller.subject, factor_id, code, recent_strong_auth=caller.strong, meta=meta
        )
        return _json(info)

    @endpoint
    async def begin_registration(request: Request, p: Provider, meta: RequestMeta) -> Response:
        caller = await _caller(request, p)
        options = await p.mfa.begin_webauthn_registration(
            caller.subject, recent_strong_auth=caller.strong, meta=meta
        )
        return _json(options)

    @endpoint
    async def finish_registration(request: Request, p: Provider, meta: RequestMeta) -> Response:
        caller = await _caller(request, p)
        body = await read_json_object(request)
        credential = body.get("credential")
        if not isinstance(credential, dict):
            raise InvalidRequest("credential must be the PublicKeyCredential JSON")
        label = string_field(body, "label") or "Passkey"
        info = await p.mfa.finish_webauthn_registration(
            caller.subject, credential, recent_strong_auth=caller.strong, label=label, meta=meta
        )
        return _json(info, 201)

    @endpoint
    async def assertion_options(request: Request, p: Provider, meta: RequestMeta) -> Response:
        # Before sign-in: the wallet's subject asks for a challenge to step up with a passkey.
        body = await read_json_object(request)
        subject = string_field(body, "subject", required=True) or ""
        return _json(await p.mfa.begin_webauthn_assertion(subject, meta=meta))

    @endpoint
    async def recovery_codes(request: Request, p: Provider, meta: RequestMeta) -> Response:
        caller = await _caller(request, p)
        codes = await p.mfa.issue_recovery_codes(caller.subject, recent_strong_auth=caller.strong, meta=meta)
        return _json({"recovery_codes": codes}, 201)

    @endpoint
    async def remove(request: Request, p: Provider, meta: RequestMeta) -> Response:
        caller = await _caller(request, p)
        factor_id = request.path_params["factor_id"]
        await p.mfa.remove_factor(caller.subject, factor_id, recent_strong_auth=caller.strong, meta=meta)
        return Response(status_code=204, headers=NO_STORE)

    return [
        Route("/mfa/factors", factors, methods=["GET"]),
        Route("/mfa/factors/{factor_id}", remove, methods=["DELETE"]),
        Route("/mfa/totp", enrol_totp, methods=["POST"]),
        Route("/mfa/totp/confirm", confirm_totp, methods=["POST"]),
        Route("/mfa/webauthn/registration", begin_registration, methods=["POST"]),
        Route("/mfa/webauthn/registration/finish", finish_registration, methods=["POST"]),
        Route("/mfa/webauthn/assertion", assertion_options, methods=["POST"]),
        Route("/mfa/recovery-codes", recovery_codes, methods=["POST"]),
    ]
