"""HTTP face of the authorization-code flow: PAR, /authorize, the hosted page's two calls, /token.

Pages (HTML) go out with a per-response CSP nonce and ``no-store``; the interaction is bound to the browser
by a cookie scoped to its own path. Errors before a trusted redirect URI is known are rendered as a page.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from app.audit.events import RequestMeta
from app.chain.names import NAMES
from app.errors import InvalidRequest, OAuthError
from app.http import cors, csrf, page_text
from app.http.body import read_form, read_json_object, read_params, string_field
from app.http.errors import NO_STORE, error_response, note_error
from app.http.pages import Pages
from app.oauth import authorize, origins, token_endpoint
from app.oauth.authz_request import PageError
from app.oauth.client_failures import authenticate_client
from app.oauth.provider import Provider, secret_hash
from app.risk.errors import RateLimited

MetaOf = Callable[[Request], RequestMeta]
COOKIE = "portcullis_interaction"


def _provider(request: Request) -> Provider:
    provider: Provider = request.app.state.provider
    return provider


def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


def _csp(nonce: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
            "base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        **NO_STORE,
    }


def _nonce() -> str:
    return base64.b64encode(secrets.token_bytes(18)).decode()


# The hosted pages' CSP and nonce, for the other pages of the server (app.http.delegations).
page_headers = _csp
page_nonce = _nonce


def binding_cookie(p: Provider, interaction_id: str) -> tuple[str, str]:
    """Name and path of an interaction's browser-binding cookie (RFC 6265bis 4.1.3.2).

    Under an https issuer: ``__Host-`` (Secure, path ``/``, no Domain: no sibling host can set or shadow
    it), named after the interaction so that two sign-ins in one browser keep apart. Under http
    (development): a plain name scoped to the interaction's own path.
    """
    if urlsplit(p.settings.issuer).scheme == "https":
        return f"__Host-{COOKIE}_{secret_hash(interaction_id)[:16]}", "/"
    return COOKIE, f"/authorize/interactions/{interaction_id}"


def _bound_browser(request: Request, p: Provider) -> str | None:
    """The browser-binding secret of a call to the page's endpoints, once the call passed the CSRF check."""
    interaction_id = request.path_params["interaction"]
    secret = request.cookies.get(binding_cookie(p, interaction_id)[0])
    csrf.check(
        request,
        key=p.csrf_key,
        issuer_origin=origins.serialize(p.settings.issuer) or "",
        interaction_id=interaction_id,
        browser_secret=secret,
    )
    return secret


def error_page(request: Request, error: OAuthError) -> HTMLResponse:
    nonce = _nonce()
    status = error.status if 400 <= error.status < 500 else 400
    body = _pages(request).error(
        status=status, error=error.error, description=error.description, script_nonce=nonce
    )
    return HTMLResponse(body, status_code=status, headers=_csp(nonce))


def _page_view(p: Provider, view: dict[str, Any]) -> dict[str, Any]:
    """What the page needs beyond the core's view: chain names and the browser-only failures in words."""
    client = view["client"]
    label = client.get("client_name") or client["client_id"]
    chains = view["siwe"]["chain_ids"]
    return {
        "chain_names": {str(k): v for k, v in NAMES.items()},
        "texts": page_text.browser_texts(operator=p.settings.operator_name, client=label, chain_ids=chains),
    }


async def _page_failure(request: Request, p: Provider, exc: OAuthError, client_label: str) -> Response:
    """An interaction call's failure (signin, consent, back): the RFC 6749 JSON as ever, plus ``page``:
    the failure in words."""
    note_error(request, exc)
    reasons = getattr(exc, "reasons", ())
    failure = page_text.classify(exc.error, reasons, exc.description)
    wait: float | None = exc.retry_after if isinstance(exc, RateLimited) else None
    if exc.status == 503:  # the Retry-After every 503 carries (app.http.errors.error_response)
        wait = p.settings.retry_after_seconds
    text = page_text.explain(
        failure,
        operator=p.settings.operator_name,
        client=client_label,
        technical=f"{exc.error}: {exc.description}",
        wait_seconds=wait,
        chain_ids=p.settings.chain_ids,
        detail=exc.description,
    )
    return error_response(exc, p.settings.retry_after_seconds, extra={"page": text.to_json()})


async def _client_label(p: Provider, request: Request) -> str:
    """The client's name for an interaction call's words (its id when it has no name; "the app" unknown)."""
    client = await authorize.client_of(p, request.path_params["interaction"])
    return (client.client_name or client.client_id) if client else "the app"


def make_routes(meta: MetaOf) -> list[Route]:
    async def par(request: Request) -> Response:
        p, m = _provider(request), meta(request)
        form = await read_form(request)
        await p.guard.admit("token", ip=m.ip, client_id=form.get("client_id"))
        client = await authenticate_client(p, form, request.headers.get("authorization"), m, "/par")
        proof = await token_endpoint.check_proof(
            p, request.headers.getlist("dpop"), method="POST", path="/par", required=False
        )
        pushed = await authorize.push(p, client, form, proof.jkt if proof else None, m)
        headers = {**NO_STORE, **token_endpoint.nonce_headers(p)}
        return JSONResponse(pushed.to_json(), status_code=201, headers=headers)

    async def authorization(request: Request) -> Response:
        p, m = _provider(request), meta(request)
        await p.guard.admit("nonce", ip=m.ip)
        try:
            started = await authorize.begin(p, await read_params(request), m)  # POST: OIDC Core 3.1.2.1
        except PageError as exc:
            return error_page(request, exc.error)
        except authorize.RedirectError as exc:
            return RedirectResponse(exc.location(p.settings.issuer), status_code=303, headers=NO_STORE)
        except OAuthError as exc:  # a malformed query: nothing is trusted yet
            return error_page(request, exc)
        nonce = _nonce()
        token = csrf.token(p.csrf_key, started.interaction_id, started.browser_secret)
        view = {**started.view, **_page_view(p, started.view), "csrf_token": token}
        body = _pages(request).signin(view, script_nonce=nonce)
        response = HTMLResponse(body, headers=_csp(nonce))
        name, path = binding_cookie(p, started.interaction_id)
        response.set_cookie(
            name,
            started.browser_secret,
            max_age=int((started.expires_at - p.clock.now()).total_seconds()),
            path=path,
            secure=urlsplit(p.settings.issuer).scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    async def interaction_signin(request: Request) -> Response:
        p, m = _provider(request), meta(request)
        await p.audit_sink.admit(p.audit_log)  # ASVS 16.5.3: no sign-in the audit trail cannot anchor
        try:
            await p.guard.admit("verify", ip=m.ip)
            browser = _bound_browser(request, p)
            body = await read_json_object(request)
            proof = authorize.WalletProof(
                message=string_field(body, "message", required=True) or "",
                signature=string_field(body, "signature", required=True) or "",
                second_factor=body.get("second_factor"),
                device_id=string_field(body, "device_id"),
            )
            answer = await authorize.sign_in(p, request.path_params["interaction"], browser, proof, m)
        except OAuthError as exc:
            return await _page_failure(request, p, exc, await _client_label(p, request))
        return JSONResponse(answer, headers=NO_STORE)

    async def interaction_back(request: Request) -> Response:
        p, m = _provider(request), meta(request)
        try:
            browser = _bound_browser(request, p)
            body: dict[str, Any] = await read_json_object(request)
            failure = string_field(body, "failure")
            if failure is not None and failure not in page_text.FAILURES:
                raise InvalidRequest("failure must be one of the page's failures (docs/API.md)")
            location = await authorize.back(p, request.path_params["interaction"], browser, failure, m)
        except OAuthError as exc:
            return await _page_failure(request, p, exc, await _client_label(p, request))
        return JSONResponse({"redirect_to": location}, headers=NO_STORE)

    async def interaction_consent(request: Request) -> Response:
        p, m = _provider(request), meta(request)
        try:
            browser = _bound_browser(request, p)
            body: dict[str, Any] = await read_json_object(request)
            approve = body.get("approve")
            if not isinstance(approve, bool):
                raise InvalidRequest("approve must be true or false")
            location = await authorize.decide(p, request.path_params["interaction"], browser, approve, m)
        except OAuthError as exc:
            return await _page_failure(request, p, exc, await _client_label(p, request))
        return JSONResponse({"redirect_to": location}, headers=NO_STORE)

    async def token(request: Request) -> Response:
        p, m = _provider(request), meta(request)
        form = await read_form(request)
        p.check_origin(cors.for_client(request, form.get("client_id")), form.get("client_id"))
        await p.audit_sink.admit(p.audit_log)  # ASVS 16.5.3: no tokens the audit trail cannot anchor
        await p.guard.admit("token", ip=m.ip, client_id=form.get("client_id"))
        answer = await token_endpoint.token(
            p, form, request.headers.get("authorization"), request.headers.getlist("dpop"), m
        )
        return JSONResponse(answer.body, headers={**NO_STORE, **answer.headers})

    return [
        Route("/token", token, methods=["POST"]),  # the busiest of these: matched first
        Route("/par", par, methods=["POST"]),
        Route("/authorize", authorization, methods=["GET", "POST"]),
        Route("/authorize/interactions/{interaction}/signin", interaction_signin, methods=["POST"]),
        Route("/authorize/interactions/{interaction}/consent", interaction_consent, methods=["POST"]),
        Route("/authorize/interactions/{interaction}/back", interaction_back, methods=["POST"]),
    ]
