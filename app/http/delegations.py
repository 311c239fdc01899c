"""The /delegations endpoints (docs/DELEGATION.md): a wallet's delegations to its trading bots.

``POST /delegations`` takes the signed message itself (its signature is the authentication);
``GET /delegations`` and ``DELETE /delegations/{id}`` take the wallet's own access token (RFC 6750, or RFC
9449 DPoP for a bound token), live by the rule userinfo applies (app.oauth.bearer). A bot's token (one with
``act``) manages no delegation.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from app.audit.events import RequestMeta
from app.errors import AccessDenied
from app.http.authorize import page_headers, page_nonce
from app.http.body import read_json_object, string_field
from app.http.errors import NO_STORE
from app.http.pages import Pages
from app.oauth import bearer, delegation
from app.oauth.provider import Provider

MetaOf = Callable[[Request], RequestMeta]


def _provider(request: Request) -> Provider:
    provider: Provider = request.app.state.provider
    return provider


async def _wallet(request: Request, p: Provider) -> str:
    claims = await bearer.access_claims(
        p,
        request.headers.get("authorization"),
        request.headers.getlist("dpop"),
        method=request.method,
        path=request.url.path,
    )
    if "act" in claims:
        raise AccessDenied("a bot's token cannot manage delegations; the wallet's own token can")
    subject: str = claims["sub"]
    return subject


def delegation_routes(meta: MetaOf) -> list[Route]:
    async def create(request: Request) -> Response:
        p, m = _provider(request), meta(request)
        body = await read_json_object(request)
        message = string_field(body, "message", required=True) or ""
        signature = string_field(body, "signature", required=True) or ""
        await p.audit_sink.admit(p.audit_log)
        await p.guard.admit("verify", ip=m.ip)
        created = await delegation.create(p, message, signature, m)
        return JSONResponse(created, status_code=201, headers=NO_STORE)

    async def listing(request: Request) -> Response:
        p = _provider(request)
        subject = await _wallet(request, p)
        return JSONResponse({"delegations": await delegation.list_own(p, subject)}, headers=NO_STORE)

    async def remove(request: Request) -> Response:
        p, m = _provider(request), meta(request)
        subject = await _wallet(request, p)
        record = await delegation.revoke(
            p, request.path_params["delegation_id"][:64], m, subject=subject, reason="revoked_by_user"
        )
        return JSONResponse(delegation.describe(record, p.clock.now()), headers=NO_STORE)

    async def manage(request: Request) -> Response:
        p = _provider(request)
        nonce = page_nonce()
        view = {"issuer": p.settings.issuer, "max_days": p.settings.delegation_max_seconds // 86400}
        pages: Pages = request.app.state.pages
        return HTMLResponse(pages.delegations(view, script_nonce=nonce), headers=page_headers(nonce))

    return [
        Route("/delegations/manage", manage, methods=["GET"]),
        Route("/delegations", create, methods=["POST"]),
        Route("/delegations", listing, methods=["GET"]),
        Route("/delegations/{delegation_id}", remove, methods=["DELETE"]),
    ]
