"""RFC 7591 client registration and RFC 7592 client configuration endpoints (docs/CLIENTS.md, docs/API.md).

Off unless ``PORTCULLIS_REGISTRATION_ENABLED``: then both paths answer 404 ``not_found``, as an unrouted
path does, with a description saying that registration is not enabled. Both are rate limited as the
``register`` endpoint (docs/RATE_LIMITS.md) before any token is looked at.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.audit.events import RequestMeta
from app.errors import MissingToken
from app.http.body import read_json_object
from app.http.errors import NO_STORE
from app.oauth.registrar import Registrar
from app.risk.guard import Guard

MetaOf = Callable[[Request], RequestMeta]


def _registrar(request: Request) -> Registrar:
    registrar: Registrar = request.app.state.provider.registrar
    if not registrar.enabled:
        raise HTTPException(404, "dynamic client registration is not enabled on this server")
    return registrar


def _guard(request: Request) -> Guard:
    guard: Guard = request.app.state.provider.guard
    return guard


def _bearer(request: Request) -> str:
    """RFC 6750 section 2.1: the initial or registration access token from the Authorization header."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingToken("a Bearer token is required (RFC 6750)")
    return token.strip()


def registration_routes(meta_of: MetaOf) -> list[Route]:
    async def register(request: Request) -> Response:
        registrar, meta = _registrar(request), meta_of(request)
        await _guard(request).admit("register", ip=meta.ip)
        access = registrar.check_initial_token(_bearer(request))
        body = await read_json_object(request)
        info = await registrar.register(access, body, meta)
        return JSONResponse(info, status_code=201, headers=NO_STORE)

    async def configuration(request: Request) -> Response:
        registrar, meta = _registrar(request), meta_of(request)
        client_id = request.path_params["client_id"]
        await _guard(request).admit("register", ip=meta.ip, client_id=client_id)
        access = await registrar.check_registration_token(client_id, _bearer(request))
        if request.method == "DELETE":
            await registrar.delete(access, meta)
            return Response(status_code=204, headers=NO_STORE)
        if request.method == "PUT":
            info = await registrar.replace(access, await read_json_object(request), meta)
        else:
            info = registrar.read(access)
        return JSONResponse(info, headers=NO_STORE)

    return [
        Route("/register", register, methods=["POST"]),
        Route("/register/{client_id}", configuration, methods=["GET", "PUT", "DELETE"]),
    ]
