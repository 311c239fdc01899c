"""The access log: one line per request, written by the app (app.http.telemetry), not by uvicorn.

The app knows what uvicorn does not: the route template, the request id, the client IP through trusted
proxies, and PORTCULLIS_AUDIT_IP, which the line's IP follows as the audit log does (truncated by default).
The query string is never written (``/logout?id_token_hint=...`` carries an ID token). In text form the
line reads as uvicorn's did (``"GET /ready HTTP/1.1" 200``); in JSON it is an object with ``event``
``http.request`` and the fields ``method``, ``path``, ``route``, ``status``, ``duration_ms``, ``client_ip``.

``portcullis registry`` and browser wallets talk to the development chain (``POST /dev/chain/rpc``) a
dozen times per command; one line each would bury the requests the log is for, so those are left out.
Every other request is logged, ``GET /dev/chain/info`` and a refused method on the RPC path included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.types import Scope

from app.chain.devchain import RPC_PATH
from app.http.client_ip import client_ip
from app.settings import Settings

ACCESS_LOGGER = "portcullis.access"


class AccessLog:
    """Writes the access-log line of a request. ``network`` turns a client IP into what may be logged
    (the Auditor's PORTCULLIS_AUDIT_IP view); it is set once the app's lifespan has built the Auditor."""

    def __init__(self, settings: Settings) -> None:
        self.log = logging.getLogger(ACCESS_LOGGER)
        self.trusted = settings.trusted_proxies
        self.network: Callable[[str | None], str | None] | None = None

    def write(self, scope: Scope, route: str, status: int, elapsed: float) -> None:
        if not self.log.isEnabledFor(logging.INFO):
            return
        method, path = scope["method"], scope["path"]
        if method == "POST" and path == RPC_PATH:
            return
        ip = None
        if self.network is not None:
            peer = scope.get("client")
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
            ip = self.network(client_ip(peer[0] if peer else None, headers, self.trusted))
        version = scope.get("http_version", "1.1")
        self.log.info(
            '%s - "%s %s HTTP/%s" %d %.1fms',
            ip or "-",
            method,
            path,
            version,
            status,
            elapsed * 1000,
            extra={
                "event": "http.request",
                "method": method,
                "path": path,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "client_ip": ip,
                "http_version": version,
            },
        )
