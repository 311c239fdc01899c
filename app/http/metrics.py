"""``GET /metrics``: the Prometheus text format, on the main port or on a port of its own (docs/DEPLOY.md).

PORTCULLIS_METRICS=on adds the route to the app; ``port:N`` leaves it out of the app and serves it from a
second listener the lifespan starts on N (a uvicorn server in the same event loop, so a scrape reads the
same process's instruments); ``off`` serves it nowhere. The port is bound with SO_REUSEPORT, so the
workers of one server share it, each answering with every worker's samples (multiprocess mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.metrics import TEXT_FORMAT, Metrics
from app.settings import Settings

PATH = "/metrics"


def metrics_route(metrics: Metrics) -> Route:
    async def scrape(_request: Request) -> Response:
        return Response(metrics.exposition(), media_type=TEXT_FORMAT, headers={"Cache-Control": "no-store"})

    return Route(PATH, scrape, methods=["GET"])


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the signals to the main server (it runs inside that server's app)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def metrics_listener(settings: Settings, metrics: Metrics) -> AsyncIterator[int | None]:
    """Serve /metrics on PORTCULLIS_METRICS=port:N while the block runs; yields the port (None: no
    separate port configured)."""
    port = settings.metrics_port
    if port is None:
        yield None
        return
    app = Starlette(routes=[metrics_route(metrics)])
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, server_header=False)
    server = _QuietServer(config)
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # the workers of one server share it
    try:
        sock.bind((settings.host, port))
        sock.listen(128)  # from here a scrape waits in the backlog until the server accepts it
    except OSError:
        sock.close()
        raise
    task = asyncio.create_task(server.serve(sockets=[sock]), name="portcullis-metrics-listener")
    try:
        yield port
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
        sock.close()
