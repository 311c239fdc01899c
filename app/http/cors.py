"""Fetch Standard section 3.2 (CORS): which browser pages on other origins may call and read what.

- Discovery and JWKS are public documents: ``Access-Control-Allow-Origin: *`` on every response.
- The per-client endpoints (:data:`CLIENT_PATHS`) are readable only from the origins of the client the
  request is for (app.oauth.provider.Provider.origin_allowed, docs/CLIENTS.md). A preflight names no
  client, so it is answered for an origin that belongs to any registered client (or to this server);
  the actual request then names its client, the endpoint records it (:func:`for_client`) and refuses a
  foreign ``Origin`` (Provider.check_origin), and its response carries the origin only if that client
  owns it. A response that names no client is readable from any registered client's origin.
- Never ``Access-Control-Allow-Credentials``: these endpoints take tokens, never cookies, so a
  cross-origin page cannot spend the user's session here.
- Every other path gets no CORS header, and ``OPTIONS`` stays unrouted there (405).

Written as a small ASGI middleware because Starlette's CORSMiddleware knows one fixed origin list, and
the answer here depends on the client.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import AccessDenied
from app.http.errors import error_response
from app.oauth.provider import Provider

PUBLIC_PATHS = frozenset(
    {"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks"}
)
CLIENT_PATHS = {
    "/token": ("POST",),
    "/userinfo": ("GET", "POST"),
    "/revoke": ("POST",),
    "/introspect": ("POST",),
    "/siwe/nonce": ("POST",),
    "/siwe/verify": ("POST",),
}
# Request headers a page may send (lower case): the token, the DPoP proof (RFC 9449), the body's type.
ALLOWED_HEADERS = ("authorization", "content-type", "dpop")
# Response headers a page may read besides the safelisted ones: RFC 9449 nonces, RFC 6750 challenges.
EXPOSED_HEADERS = "DPoP-Nonce, WWW-Authenticate, Retry-After"
PREFLIGHT_MAX_AGE = "600"
_CLIENT_KEY = "cors_client"


def for_client(request: Request, client_id: str | None) -> str | None:
    """Record ``client_id`` as the client this request is for (its response is readable only from that
    client's origins) and return the request's ``Origin`` (None: not a browser request)."""
    if client_id is not None:
        setattr(request.state, _CLIENT_KEY, client_id)
    return request.headers.get("origin")


class CorsMiddleware:
    """Answers CORS preflights on the CORS paths and adds the CORS headers to their responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        public = path in PUBLIC_PATHS
        if scope["type"] != "http" or not (public or path in CLIENT_PATHS):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await _preflight(scope["app"].state.provider, path, origin, headers)(scope, receive, send)
            return
        if not public and origin is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                if public:
                    out["Access-Control-Allow-Origin"] = "*"
                else:
                    out.add_vary_header("Origin")
                    client_id = scope.get("state", {}).get(_CLIENT_KEY)
                    if origin is not None and scope["app"].state.provider.origin_allowed(origin, client_id):
                        out["Access-Control-Allow-Origin"] = origin
                        out["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _preflight(p: Provider, path: str, origin: str | None, headers: Headers) -> Response:
    """Fetch Standard 4.8 CORS-preflight: 204 with what may be sent, or 403 without any allow header."""
    methods = ("GET",) if path in PUBLIC_PATHS else CLIENT_PATHS[path]
    method = headers["access-control-request-method"].strip()
    asked = [h.strip().lower() for h in headers.get("access-control-request-headers", "").split(",")]
    asked = [h for h in asked if h]
    problem = None
    if origin is None:
        problem = "a CORS preflight needs an Origin header"
    elif path not in PUBLIC_PATHS and not p.origin_allowed(origin, None):
        problem = f"origin {origin[:100]!r} is not registered for any client (docs/CLIENTS.md)"
    elif method not in methods:
        problem = f"method {method[:20]!r} is not allowed here"
    elif any(h not in ALLOWED_HEADERS for h in asked):
        problem = "only the Authorization, Content-Type and DPoP request headers are allowed"
    vary = {"Vary": "Origin"} if path not in PUBLIC_PATHS else {}
    if problem is not None:
        refused = error_response(AccessDenied(problem))
        refused.headers.update(vary)
        return refused
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": "*" if path in PUBLIC_PATHS else str(origin),
            "Access-Control-Allow-Methods": ", ".join(methods),
            "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            **vary,
        },
    )
