"""The HTTP face: each endpoint parses the request, calls a core, renders the response."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.audit.events import RequestMeta
from app.errors import InvalidRequest, TemporarilyUnavailable
from app.http import cors
from app.http.authorize import make_routes as authorize_routes
from app.http.body import read_form, read_json_object, string_field
from app.http.client_ip import client_ip
from app.http.delegations import delegation_routes
from app.http.errors import NO_STORE, error_response, retry_after
from app.http.logout import logout_routes
from app.http.mfa import mfa_routes
from app.http.registration import registration_routes
from app.oauth import bearer, introspection, signin
from app.oauth.provider import Provider
from app.oidc import discovery, userinfo


def _provider(request: Request) -> Provider:
    provider: Provider = request.app.state.provider
    return provider


def _meta(request: Request) -> RequestMeta:
    peer = request.client.host if request.client else None
    trusted = _provider(request).settings.trusted_proxies
    return RequestMeta(
        request_id=request.state.request_id,
        ip=client_ip(peer, request.headers.items(), trusted),
        user_agent=request.headers.get("user-agent"),
    )


async def siwe_nonce(request: Request) -> Response:
    p, meta = _provider(request), _meta(request)
    body = await read_json_object(request, optional=True)
    client_id = string_field(body, "client_id")
    origin = cors.for_client(request, client_id)
    async with p.guard.admitted("nonce", ip=meta.ip, client_id=client_id) as gate:
        offer = await signin.issue_nonce(
            p, client_id, string_field(body, "oidc_nonce"), meta, gate, origin=origin
        )
    return JSONResponse(offer.to_json(), status_code=201, headers=NO_STORE)


async def siwe_verify(request: Request) -> Response:
    body = await read_json_object(request)
    max_age = body.get("max_age")
    if max_age is not None and (not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 0):
        raise InvalidRequest("max_age must be a non-negative integer (seconds)")
    req = signin.SignInRequest(
        text=string_field(body, "message", required=True) or "",
        signature=string_field(body, "signature", required=True) or "",
        client_id=string_field(body, "client_id"),
        scope=string_field(body, "scope"),
        second_factor=body.get("second_factor"),
        acr_values=string_field(body, "acr_values"),
        max_age=max_age,
        authorization_details=body.get("authorization_details"),
        device_id=string_field(body, "device_id"),
        origin=request.headers.get("origin"),
    )
    p, meta = _provider(request), _meta(request)
    cors.for_client(request, req.client_id)  # refused in signin.sign_in, where failures are audited
    await p.audit_sink.admit(p.audit_log)  # ASVS 16.5.3: no sign-in the audit trail cannot anchor
    async with p.guard.admitted("verify", ip=meta.ip, client_id=req.client_id) as gate:
        tokens = await signin.sign_in(p, req, meta, gate)
    return JSONResponse(tokens.to_json(), headers=NO_STORE)


async def introspection_endpoint(request: Request) -> Response:
    p, meta = _provider(request), _meta(request)
    form = await read_form(request)
    p.check_origin(cors.for_client(request, form.get("client_id")), form.get("client_id"))
    await p.guard.admit("token", ip=meta.ip, client_id=form.get("client_id"))
    answer = await introspection.introspect(p, form, request.headers.get("authorization"), meta)
    return JSONResponse(answer, headers=NO_STORE)


async def revocation_endpoint(request: Request) -> Response:
    p, meta = _provider(request), _meta(request)
    form = await read_form(request)
    p.check_origin(cors.for_client(request, form.get("client_id")), form.get("client_id"))
    await p.guard.admit("token", ip=meta.ip, client_id=form.get("client_id"))
    await introspection.revoke(p, form, request.headers.get("authorization"), meta)
    return Response(status_code=200, headers=NO_STORE)


async def userinfo_endpoint(request: Request) -> Response:
    p = _provider(request)
    claims = await bearer.access_claims(
        p,
        request.headers.get("authorization"),
        request.headers.getlist("dpop"),
        method=request.method,
        path="/userinfo",
    )
    named = claims.get("client_id")
    client_id = named if isinstance(named, str) else None
    p.check_origin(cors.for_client(request, client_id), client_id)
    return JSONResponse(userinfo.userinfo(claims, p.trading_policy), headers=NO_STORE)


async def openid_configuration(request: Request) -> Response:
    return JSONResponse(
        discovery.metadata(_provider(request).settings, _provider(request).trading_policy),
        headers={"Cache-Control": "max-age=300"},
    )


async def jwks(request: Request) -> Response:
    return JSONResponse(
        _provider(request).keys.ring.jwks(),
        media_type="application/jwk-set+json",
        # The same setting sets how long before signing a rotated key is published (app.oidc.keys).
        headers={"Cache-Control": f"max-age={_provider(request).settings.jwks_max_age_seconds}"},
    )


async def health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


# /ready answers within 2 s whatever the database does (a black-holed one never answers at all): an
# orchestrator's probe must not time out, and a slow answer is itself "not ready".
READY_PING_SECONDS = 1.5


async def ready(request: Request) -> Response:
    if getattr(request.app.state, "draining", False):  # SIGTERM came (app.cli.workers): take us out
        raise TemporarilyUnavailable("the server is shutting down")
    p = _provider(request)
    try:
        await asyncio.wait_for(p.store.ping(), READY_PING_SECONDS)
    except Exception as exc:  # any failure to reach the database, or none in time, means not ready
        raise TemporarilyUnavailable("the database is not reachable") from exc
    if not await p.guard.healthy():
        # Limits still hold (stricter, per process), but replicas no longer share them: not ready.
        raise TemporarilyUnavailable(
            "Redis is not reachable; rate limits run on stricter per-process budgets"
        )
    sink = p.audit_sink.status()
    if not sink["ok"]:  # ASVS 16.5.3: checkpoints cannot reach the write-once sink
        down = TemporarilyUnavailable(f"the audit checkpoint sink cannot be written: {sink['error']}")
        answer = error_response(down, retry_after(request))
        return JSONResponse(
            {**down.to_json(), "audit_sink": sink}, status_code=503, headers=dict(answer.headers)
        )
    return JSONResponse({"status": "ready", "compliance": p.settings.compliance, "audit_sink": sink})


# Starlette tries routes in order: the busiest (sign-in, introspection, keys) come first, so they do
# not pay for matching every MFA, authorization, registration and logout path before their own.
ROUTES = [
    Route("/siwe/nonce", siwe_nonce, methods=["POST"]),
    Route("/siwe/verify", siwe_verify, methods=["POST"]),
    Route("/introspect", introspection_endpoint, methods=["POST"]),
    Route("/jwks", jwks, methods=["GET"]),
    *authorize_routes(_meta),
    Route("/userinfo", userinfo_endpoint, methods=["GET", "POST"]),
    Route("/revoke", revocation_endpoint, methods=["POST"]),
    Route("/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
    Route("/.well-known/oauth-authorization-server", openid_configuration, methods=["GET"]),
    *mfa_routes(_meta),
    *registration_routes(_meta),
    *delegation_routes(_meta),
    *logout_routes(_meta),
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
]
