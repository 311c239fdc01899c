"""Starlette (and FastAPI) glue: a dependency, an endpoint decorator, a middleware and the error handler.

The protocol logic lives in :class:`~portcullis_resource.validator.Validator` and ``authz``; this module only
reads the request (method, public URL, ``Authorization``, ``DPoP``) and renders a refusal as JSON with its
``WWW-Authenticate`` challenge. Install with the ``starlette`` extra.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from portcullis_resource import authz
from portcullis_resource.errors import ResourceError
from portcullis_resource.tokens import AccessToken
from portcullis_resource.validator import Validator

STATE_KEY = "portcullis_validator"


def request_url(conn: HTTPConnection, public_origin: str | None = None) -> str:
    """The URL the client called, as it puts it in ``htu``: behind a proxy pass ``public_origin``."""
    url = conn.url
    if public_origin:
        return public_origin.rstrip("/") + url.path
    return str(url.replace(query="", fragment=""))


async def authenticate(
    request: HTTPConnection,
    validator: Validator,
    *,
    introspect: bool = False,
    public_origin: str | None = None,
) -> AccessToken:
    """The request's validated access token, or a ResourceError."""
    return await validator.authenticate(
        method=request.scope.get("method", "GET"),
        url=request_url(request, public_origin),
        authorization=request.headers.get("authorization"),
        dpop_proofs=request.headers.getlist("dpop"),
        introspect=introspect,
    )


def error_response(validator: Validator, exc: ResourceError) -> Response:
    status, headers, body = validator.render(exc)
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: Any, validator: Validator) -> None:
    """Keep ``validator`` in ``app.state`` and render every ResourceError (Starlette or FastAPI app)."""
    setattr(app.state, STATE_KEY, validator)

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ResourceError)
        return error_response(validator, exc)

    app.add_exception_handler(ResourceError, handler)


def _validator(request: HTTPConnection) -> Validator:
    found = getattr(request.app.state, STATE_KEY, None)
    if not isinstance(found, Validator):
        raise RuntimeError("portcullis_resource.starlette.install(app, validator) was not called")
    return found


class Protected:
    """A FastAPI dependency (``token: AccessToken = Depends(Protected(scopes=["perps:trade"]))``) and a
    plain awaitable for Starlette endpoints (``token = await Protected(...)(request)``)."""

    def __init__(
        self,
        scopes: Iterable[str] = (),
        *,
        acr_values: Iterable[str] = (),
        max_age: int | None = None,
        introspect: bool = False,
        public_origin: str | None = None,
    ) -> None:
        self.scopes = tuple(scopes)
        self.acr_values = tuple(acr_values)
        self.max_age = max_age
        self.introspect = introspect
        self.public_origin = public_origin

    async def __call__(self, request: Request) -> AccessToken:
        validator = _validator(request)
        token = await authenticate(request, validator, introspect=False, public_origin=self.public_origin)
        # Step-up before scope: a token too weak for the route cannot carry its scope (Portcullis grants
        # vault:withdraw only to wallet+mfa sessions), and the step-up challenge is what gets it.
        if self.acr_values or self.max_age is not None:
            authz.require_acr(token, self.acr_values, max_age=self.max_age, now=validator.clock())
        authz.require_scope(token, *self.scopes)
        if self.introspect:
            token = await validator.confirm_live(token)
        request.state.access_token = token
        return token


Endpoint = Callable[[Request], Awaitable[Response]]


def requires(
    scopes: Iterable[str] = (),
    *,
    acr_values: Iterable[str] = (),
    max_age: int | None = None,
    introspect: bool = False,
    public_origin: str | None = None,
) -> Callable[[Endpoint], Endpoint]:
    """Decorate a Starlette endpoint: the token lands in ``request.state.access_token``."""
    guard = Protected(
        scopes, acr_values=acr_values, max_age=max_age, introspect=introspect, public_origin=public_origin
    )

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapped(request: Request) -> Response:
            try:
                await guard(request)
                return await endpoint(request)
            except ResourceError as exc:
                return error_response(_validator(request), exc)

        return wrapped

    return decorate


class ResourceMiddleware:
    """Pure ASGI middleware: every HTTP request (except ``exempt`` path prefixes) must carry a valid
    token, found afterwards in ``request.state.access_token``; a refusal is answered here."""

    def __init__(
        self, app: ASGIApp, validator: Validator, exempt: Iterable[str] = (), public_origin: str | None = None
    ) -> None:
        self.app = app
        self.validator = validator
        self.exempt = tuple(exempt)
        self.public_origin = public_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt and scope["path"].startswith(self.exempt)):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        try:
            token = await authenticate(conn, self.validator, public_origin=self.public_origin)
        except ResourceError as exc:
            await error_response(self.validator, exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["access_token"] = token
        await self.app(scope, receive, send)
