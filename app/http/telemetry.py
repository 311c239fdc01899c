"""Per request: the log context, the request metrics and the access-log line (docs/DEPLOY.md).

One ASGI middleware, inside the request-id middleware: it opens the request's log context (app.logs), times
the request to the end of its response, counts it under its route template (Starlette's matched route, never
the raw path: ``/register/{client_id}``, and ``<unmatched>`` for a 404) and writes the access-log line.
The hot path pays a dict lookup per request for the metric children (one pair per route, method and status,
made once) and nothing for the access log when its level is off.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import logs
from app.http.access_log import AccessLog
from app.metrics import Metrics

UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The path template of the route that answered (set by Starlette's router), or ``<unmatched>``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class Telemetry:
    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: AccessLog) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        token = logs.begin_request(scope.get("state", {}).get("request_id", ""))
        status = 500  # what the client gets when the app raises before its response starts

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        finally:
            elapsed = time.perf_counter() - start
            route = route_template(scope)
            method = scope["method"] if scope["method"] in METHODS else "other"
            self._observe(route, method, status, elapsed)
            self.access_log.write(scope, route, status, elapsed)
            logs.end_request(token)

    def _observe(self, route: str, method: str, status: int, elapsed: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            labels = (route, method, str(status))
            m = self.metrics
            children = self._children[key] = (
                m.http_requests.labels(*labels),
                m.http_duration.labels(*labels),
            )
        children[0].inc()
        children[1].observe(elapsed)
