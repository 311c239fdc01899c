"""RFC 9112 section 9 (connection management): bounds on slow and idle clients.

uvicorn closes a connection that idles after a response (``timeout_keep_alive``) but bounds neither how long a
client may take to send a request nor how many connections it may hold: a connection that sends nothing,
or its headers or body a byte at a time, stays open for good (measured, docs/DEPLOY.md "Slow clients").
Four bounds, each a setting:

- header deadline (``HeaderDeadline``, uvicorn's httptools protocol plus one timer): a request's headers must
  be complete ``http_header_timeout_seconds`` after the connection opened or its previous response ended;
  else the connection is closed (after a 408 when part of a request had come);
- body deadline (``BodyDeadline``, ASGI middleware): the body must have arrived ``http_body_timeout_seconds``
  after the application first asks for it; else 408 ``request_timeout`` and the connection is closed;
- idle keep-alive: uvicorn's own ``timeout_keep_alive`` (``http_keep_alive_seconds``);
- connection cap: a request arriving while more than ``http_max_connections`` connections are open gets
  503 ``temporarily_unavailable`` with ``Retry-After`` and the connection is closed.

A reverse proxy in front should enforce the same at the edge (docs/DEPLOY.md); these hold without one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Collection
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.errors import RequestTimeout, TemporarilyUnavailable
from app.http.errors import error_response
from app.settings import Settings

log = logging.getLogger("portcullis.http")


def _raw_408(seconds: float) -> bytes:
    """The 408 written straight to the socket when the headers are late (no ASGI request exists yet)."""
    error = RequestTimeout(f"the request headers did not arrive within {seconds:g} s")
    body = json.dumps(error.to_json()).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "cache-control: no-store\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


def _capped(app: Any, connections: Collection[object], limit: int) -> Any:
    """``app``, except that a request arriving while more than ``limit`` connections are open gets 503."""

    async def capped(scope: Scope, receive: Receive, send: Send) -> None:
        if len(connections) <= limit:
            await app(scope, receive, send)
            return
        log.warning(
            "connection cap reached (%d open, PORTCULLIS_HTTP_MAX_CONNECTIONS=%d)", len(connections), limit
        )
        response = error_response(TemporarilyUnavailable("the server has too many open connections"))
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

    return capped


def header_deadline_protocol(settings: Settings) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the header deadline and the connection cap of ``settings``."""
    seconds = settings.http_header_timeout_seconds
    limit = settings.http_max_connections
    late = _raw_408(seconds)

    class HeaderDeadline(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.app = _capped(self.app, self.connections, limit)
            self._deadline: asyncio.TimerHandle | None = None
            self._partial = False  # bytes of a request came since the deadline was armed

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            self._partial = True
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # A pipelined request already has its headers; otherwise the next request's clock starts now.
            if not self.pipeline and not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._partial = False
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            if self._partial:
                self.transport.write(late)
            self.transport.close()

    return HeaderDeadline


class BodyDeadline:
    """ASGI middleware: the request body must be complete ``seconds`` after the application first reads it."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        ends: float | None = None
        complete = False

        async def bounded() -> Message:
            nonlocal ends, complete
            if complete:  # the body is in; later reads only wait for a disconnect
                return await receive()
            if ends is None:
                ends = loop.time() + self.seconds
            try:
                async with asyncio.timeout_at(ends):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(f"the request body did not arrive within {self.seconds:g} s") from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, bounded, send)
