"""``create_app(settings)``: the ASGI application. All state lives in the lifespan, none in modules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from app import bootstrap
from app.chain.devchain import DevChain, dev_chain_routes, open_dev_chain
from app.chain.follower import ChainChange
from app.clock import Clock, Entropy
from app.http.access_log import AccessLog
from app.http.cors import CorsMiddleware
from app.http.demo import demo_routes
from app.http.errors import HANDLERS, unexpected_error
from app.http.metrics import metrics_listener, metrics_route
from app.http.openapi import openapi_route
from app.http.pages import Pages
from app.http.request_id import RequestIdMiddleware
from app.http.routes import ROUTES
from app.http.slow_clients import BodyDeadline
from app.http.telemetry import Telemetry
from app.metrics import Metrics, pool_sampler
from app.oauth import compliance
from app.oauth.provider import Provider
from app.oidc import keys
from app.settings import Settings
from app.storage import changes

log = logging.getLogger("portcullis")

PURGE_INTERVAL = timedelta(minutes=5)
CHECKPOINT_TICK = 1.0  # seconds between looks at the audit head
METRICS_SAMPLE_SECONDS = 5.0  # multiprocess mode: how often a worker refreshes its pool gauges


def create_app(
    settings: Settings, *, clock: Clock | None = None, entropy: Entropy | None = None
) -> Starlette:
    routes: list[BaseRoute] = [*ROUTES, openapi_route()]
    pages = Pages()  # read once per app, before the first request
    # The app's instruments, in a registry of its own (docs/DEPLOY.md, "Metrics"); counted even when not
    # served, so switching the exposition on changes nothing else.
    metrics = Metrics(settings.metrics_dir if settings.metrics != "off" else None)
    if settings.metrics == "on":
        routes.append(metrics_route(metrics))
    access_log = AccessLog(settings)
    dev_chain: DevChain | None = None
    if settings.mode == "development" and settings.dev_chain:
        # Development only: an in-process EVM with the registry; its JSON-RPC is served for the CLI. Its
        # blocks are journalled in the data dir, so grants survive a restart (docs/DEV_CHAIN.md, "State").
        dev_chain = open_dev_chain(settings.data_dir, clock=clock)
        routes += dev_chain_routes(dev_chain)
    if settings.mode == "development":
        # The demo dApp (frontend-demo/, docs in its README) and its public client: development only.
        routes += demo_routes(settings, dev_chain.chain_id if dev_chain is not None else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with running(app):
                yield
        finally:
            if dev_chain is not None:
                dev_chain.close()  # releases the journal: `portcullis dev reset` may now clear it

    @contextlib.asynccontextmanager
    async def running(app: Starlette) -> AsyncIterator[None]:
        if settings.compliance == "off":
            log.warning(
                "PORTCULLIS_COMPLIANCE=off: no on-chain compliance gate; every wallet that signs can sign in,"
                ' and every token carries compliance {"source": "none"}'
            )
        runtime = await bootstrap.start(settings, clock, entropy, dev_chain=dev_chain, metrics=metrics)
        app.state.provider = runtime.provider
        access_log.network = runtime.provider.auditor.network  # the access log's IP as the audit log's
        metrics.samplers += [
            pool_sampler("hot", lambda: getattr(runtime.store.hot, "pool", None)),
            pool_sampler("sqlalchemy", runtime.engine.sync_engine.pool),
        ]
        app.state.pages = pages
        app.state.dev_chain = dev_chain
        app.state.runtime_checkpointer = runtime.checkpointer
        stop = asyncio.Event()
        p = runtime.provider

        async def on_change(change: ChainChange) -> None:
            await compliance.on_chain_change(p, change)

        tasks = [
            asyncio.create_task(_housekeeping(runtime.provider, runtime.secret)),
            asyncio.create_task(_checkpoints(runtime)),
            *(asyncio.create_task(f.run(stop)) for f in p.chains.followers(on_change)),
        ]
        listener = change_listener(p, runtime.secret)
        if listener is not None:  # other processes' key, client and chain changes (app.storage.changes)
            tasks.append(asyncio.create_task(listener.run(stop)))
        app.state.change_listener = listener
        if metrics.multiprocess_dir is not None:  # a scrape reaches one worker: each keeps its gauges fresh
            tasks.append(asyncio.create_task(_sample_metrics(metrics)))
        try:
            async with metrics_listener(settings, metrics):
                yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            try:  # a clean shutdown leaves the whole log covered by a signed checkpoint
                await runtime.checkpointer.tick(runtime.provider.clock.now(), force=True)
            except Exception:
                log.exception("final audit checkpoint failed")
            finally:
                await runtime.provider.chains.close()
                await runtime.provider.guard.close()
                await runtime.provider.sign_in_history.close()
                await runtime.store.close()
                await runtime.engine.dispose()
                metrics.process_exited()

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(Telemetry, metrics=metrics, access_log=access_log),
            Middleware(CorsMiddleware),
            Middleware(BodyDeadline, seconds=settings.http_body_timeout_seconds),
        ],
        exception_handlers={**HANDLERS, Exception: unexpected_error},  # type: ignore[dict-item]
        lifespan=lifespan,
    )
    app.state.dev_chain = dev_chain  # for the start-up banner, before the lifespan runs
    app.state.metrics = metrics
    return app


async def _sample_metrics(metrics: Metrics) -> None:
    while True:
        await asyncio.sleep(METRICS_SAMPLE_SECONDS)
        metrics.sample()


async def _checkpoints(runtime: bootstrap.Runtime) -> None:
    """Sign a checkpoint every N entries or M seconds (app.audit.checkpoints.Checkpointer decides)."""
    while True:
        await asyncio.sleep(CHECKPOINT_TICK)
        try:
            await runtime.checkpointer.tick(runtime.provider.clock.now())
        except Exception:
            log.exception("audit checkpoint failed")


async def _housekeeping(p: Provider, secret: bytes) -> None:
    """Pick up keys rotated by another process, and purge expired nonces and refresh tokens.

    Reloads every ``key_reload_seconds``: a rotation's activation lead counts on it (app.oidc.keys)."""
    reload = timedelta(seconds=p.settings.key_reload_seconds)
    since_purge = PURGE_INTERVAL
    while True:
        await asyncio.sleep(reload.total_seconds())
        try:  # the safety net under the change listener: a missed notification is picked up here
            await _reload_keys(p, secret)
            await p.registrar.reload()  # dynamic clients another process registered, changed or deleted
            since_purge += reload
            if since_purge >= PURGE_INTERVAL:
                since_purge = timedelta(0)
                await p.store.purge_expired(p.clock.now())
                await p.authz.purge_expired(p.clock.now())
        except Exception:  # housekeeping must never kill the server; requests fail closed on their own
            log.exception("housekeeping failed")


async def _reload_keys(p: Provider, secret: bytes) -> None:
    schedule = keys.load_schedule(await p.key_store.list_keys(), secret, p.clock.now())
    if schedule is not None:
        p.keys.schedule = schedule


def change_listener(p: Provider, secret: bytes) -> changes.ChangeListener | None:
    """This process's listener for what other processes change (None on SQLite: one process)."""
    dsn = changes.listener_dsn(p.settings.database_url)
    if dsn is None:
        return None

    async def on_keys(_detail: str) -> None:
        await _reload_keys(p, secret)

    async def on_clients(_detail: str) -> None:
        await p.registrar.reload()

    async def on_chain(detail: str) -> None:
        chain_id, _, address = detail.partition(":")
        for chain_id_now in [int(chain_id)] if chain_id else p.settings.chain_ids:
            chain = p.chains.get(chain_id_now)
            reader = chain.reader if chain is not None else None
            if reader is None:
                continue
            if address:
                reader.invalidate(address)
            else:
                reader.invalidate_all()

    handlers = {changes.KEYS: on_keys, changes.CLIENTS: on_clients, changes.CHAIN: on_chain}
    return changes.ChangeListener(dsn, handlers, connect_timeout=p.settings.database_connect_timeout_seconds)
