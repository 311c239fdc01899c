"""``portcullis serve``: one server process, or N pre-fork workers sharing one listening socket.

The workers are uvicorn's own (``uvicorn.supervisors.Multiprocess``): the parent binds the socket, starts
N processes, restarts one that dies, and on SIGTERM or SIGINT sends SIGTERM to each and waits for it. Each
worker runs its own lifespan (database pool, key ring, client registry, chain followers, the change
listener) and shuts down gracefully on its own: the listening socket closes (new connections are
refused), in-flight requests get ``shutdown_timeout_seconds`` to finish, then the background tasks stop.

uvicorn starts its workers with ``multiprocessing``'s *spawn* and pickles its ``Config`` to each one; our
HTTP protocol class (the header deadline, app.http.slow_clients) and the app are built from the
Settings, so :class:`WorkerConfig` carries the Settings across and builds both inside the worker.
"""

from __future__ import annotations

import contextlib
import inspect
import signal
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from app.settings import Settings

# uvicorn's graceful-shutdown signals; the handler it installs is wrapped so the app drains first.
DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def _built_in_worker(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
    """Placeholder ASGI app pickled to the workers; :meth:`WorkerConfig.load` replaces it."""
    raise RuntimeError("WorkerConfig.load builds the app")


class WorkerConfig(uvicorn.Config):
    """A uvicorn Config that builds the Portcullis app and protocol in the process that serves them."""

    def __init__(self, settings: Settings, app: Starlette | None = None, **options: Any) -> None:
        self.portcullis_settings = settings
        self.portcullis_app = app  # built already (one process); None: each worker builds its own
        super().__init__(
            app=_built_in_worker,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_seconds)),
            **options,
        )

    def load(self) -> None:
        if self.loaded:
            return
        from app.http.app import create_app
        from app.http.slow_clients import header_deadline_protocol

        app = self.portcullis_app or create_app(self.portcullis_settings)
        self.portcullis_app = app
        self.app = app
        self.http = header_deadline_protocol(self.portcullis_settings)
        drain_on_signals(app)
        super().load()


def drain_on_signals(app: Starlette) -> None:
    """Mark ``app`` draining (``/ready`` answers 503) the moment SIGTERM or SIGINT arrives, then let
    uvicorn's own handler start the graceful shutdown.

    uvicorn installs its handlers before it loads the app (``Server.serve``), so they are in place here;
    outside a server (no handler of uvicorn's) nothing is changed."""
    for sig in DRAIN_SIGNALS:
        previous = signal.getsignal(sig)
        if not inspect.ismethod(previous):  # uvicorn's is Server.handle_exit, a bound method
            continue

        def draining(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            app.state.draining = True
            previous(signum, frame)

        signal.signal(sig, draining)


def run(config: WorkerConfig) -> None:
    """Serve until told to stop: in this process (one worker) or through uvicorn's supervisor."""
    if config.workers == 1:
        # uvicorn re-raises the signal it shut down on; SIGINT's is KeyboardInterrupt (as uvicorn.run does)
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run()
        return
    from uvicorn.supervisors import Multiprocess

    sock = config.bind_socket()
    Multiprocess(config, sockets=[sock]).run()
