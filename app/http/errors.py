"""Rendering errors: every failure leaves as RFC 6749 section 5.2 JSON with ``Cache-Control: no-store``."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import OAuthError, ServerError, TemporarilyUnavailable

log = logging.getLogger("portcullis.http")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def error_response(exc: OAuthError) -> JSONResponse:
    return JSONResponse(exc.to_json(), status_code=exc.status, headers={**NO_STORE, **exc.headers()})


async def oauth_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    if exc.debug:
        log.info("%s: %s (%s)", exc.error, exc.description, exc.debug)
    return error_response(exc)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
    return JSONResponse(
        {"error": code, "error_description": str(exc.detail)},
        status_code=exc.status_code,
        headers={**NO_STORE, **(exc.headers or {})},
    )


async def database_error(_request: Request, exc: Exception) -> Response:
    # Fail closed: no database, no decision. The detail goes to the log, not to the client.
    log.error("database unavailable: %s", exc.__class__.__name__, exc_info=exc)
    return error_response(TemporarilyUnavailable("the database is unavailable; try again later"))


async def unexpected_error(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(ServerError("internal error"))


HANDLERS = {
    OAuthError: oauth_error,
    HTTPException: http_error,
    OperationalError: database_error,
    DBAPIError: database_error,
    OSError: database_error,
}
