"""``/logout`` (GET and POST): OpenID Connect RP-Initiated Logout 1.0 for browsers (docs/API.md).

Parse the parameters (query for GET, form body for POST; a repeated one is an error), call
app.oauth.logout, then answer with a 303 to the RP or a small HTML page. The pages are static text with
every dynamic value escaped, under a Content-Security-Policy that allows nothing to load or frame them.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from app.audit.events import RequestMeta
from app.errors import OAuthError
from app.http.body import read_params
from app.oauth.logout import LogoutDecision, end_session, parse_request
from app.oauth.provider import Provider

MetaOf = Callable[[Request], RequestMeta]

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The request URL holds the ID token: never hand it on in a Referer.
    "Referrer-Policy": "no-referrer",
}


def _page(title: str, paragraphs: list[str], status: int) -> Response:
    """``paragraphs`` are HTML fragments already escaped by the caller."""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=PAGE_HEADERS)


def signed_out_page(decision: LogoutDecision) -> Response:
    name = decision.client.client_name if decision.client is not None else None
    app = html.escape(name or decision.client_id or "the application")
    if decision.session_id is not None:
        lines = [f"Your Portcullis session with {app} has ended: its tokens can no longer be used."]
    else:
        lines = [
            "Portcullis keeps no sign-in session in your browser, so there was nothing here to end.",
            "To end an application's session, sign out in the application itself.",
        ]
    if decision.return_to is not None:
        lines.append(f'<a href="{html.escape(decision.return_to, quote=True)}">Return to {app}</a>')
    return _page("You are signed out", lines, 200)


def error_page(exc: OAuthError) -> Response:
    lines = [
        f"This sign-out request cannot be completed: {html.escape(exc.description)}.",
        "Nothing was signed out, and you have not been sent back to the application.",
    ]
    return _page("Sign-out failed", lines, exc.status)


def logout_routes(meta_of: MetaOf) -> list[Route]:
    async def logout(request: Request) -> Response:
        p: Provider = request.app.state.provider
        meta = meta_of(request)
        await p.guard.admit("token", ip=meta.ip)
        try:
            decision = await end_session(p, parse_request(await read_params(request)), meta)
        except OAuthError as exc:
            if exc.status >= 500:
                raise
            return error_page(exc)
        if decision.redirect_to is not None:
            return RedirectResponse(
                decision.redirect_to,
                status_code=303,
                headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
            )
        return signed_out_page(decision)

    return [Route("/logout", logout, methods=["GET", "POST"])]
