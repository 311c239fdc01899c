"""Rendering errors: every failure leaves as RFC 6749 section 5.2 JSON with ``Cache-Control: no-store``."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import OAuthError, ServerError, TemporarilyUnavailable
from app.http.telemetry import route_template
from app.risk.errors import RateLimited

log = logging.getLogger("portcullis.http")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def error_response(
    exc: OAuthError, retry_after: int | None = None, *, extra: Mapping[str, Any] | None = None
) -> JSONResponse:
    """``exc`` as RFC 6749 JSON; every 503 says when to try again (``retry_after`` seconds, if given).
    ``extra``: members added beside ``error`` (RFC 6749 5.2 allows more; the hosted page's ``page``)."""
    headers = {**NO_STORE, **exc.headers()}
    if exc.status == 503 and retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({**exc.to_json(), **(extra or {})}, status_code=exc.status, headers=headers)


def retry_after(request: Request) -> int | None:
    """PORTCULLIS_RETRY_AFTER_SECONDS of the app serving ``request`` (None before its lifespan ran)."""
    provider = getattr(request.app.state, "provider", None)
    return provider.settings.retry_after_seconds if provider is not None else None


def note_error(request: Request, exc: OAuthError) -> None:
    """What every OAuth error leaves besides its response: the rate-limit metric and the debug log line."""
    if isinstance(exc, RateLimited):
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.rate_limited.labels(route_template(request.scope), exc.cause).inc()
    if exc.debug:
        log.info("%s: %s (%s)", exc.error, exc.description, exc.debug)


async def oauth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    note_error(request, exc)
    return error_response(exc, retry_after(request))


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
    return JSONResponse(
        {"error": code, "error_description": str(exc.detail)},
        status_code=exc.status_code,
        headers={**NO_STORE, **(exc.headers or {})},
    )


async def database_error(request: Request, exc: Exception) -> Response:
    # Fail closed: no database, no decision. The detail goes to the log, not to the client.
    log.error("database unavailable: %s", exc.__class__.__name__, exc_info=exc)
    unavailable = TemporarilyUnavailable("the database is unavailable; try again later")
    return error_response(unavailable, retry_after(request))


async def unexpected_error(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(ServerError("internal error"))


HANDLERS = {
    OAuthError: oauth_error,
    HTTPException: http_error,
    OperationalError: database_error,
    DBAPIError: database_error,
    # A statement or connect that ran out of time (PORTCULLIS_DATABASE_*_TIMEOUT_SECONDS), the pool's
    # checkout wait, and the drivers' own errors where a reader runs on the driver connection directly
    # (app/risk/readers.py): all mean "could not ask the database", never a 500.
    asyncio.TimeoutError: database_error,
    PoolTimeout: database_error,
    asyncpg.PostgresError: database_error,
    asyncpg.InterfaceError: database_error,
    sqlite3.Error: database_error,
    OSError: database_error,
}
