"""GET /ready: whether this replica can serve, dependency by dependency (``/health`` stays process-only).

Each dependency sits behind a ``Probe``: PostgreSQL (or SQLite) answers one ``SELECT 1``, Redis (when
configured) a PING, each chain with compliance sources its latest block, and the audit checkpoint sink
reports its last write. The probes run concurrently and the whole answer is bounded (``READY_SECONDS``):
an orchestrator's probe must not time out, and a dependency that does not answer in time is itself "not
ready" (a black-holed database never answers at all). 200 ``{"status": "ready", "checks": {...}}``, or
503 with Retry-After naming the failing checks; 503 ``{"status": "draining"}`` once graceful shutdown
has set ``app.state.draining``, so the load balancer stops sending before the process stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import TemporarilyUnavailable
from app.http.errors import NO_STORE, retry_after

# Each probe gets PROBE_SECONDS; all of them run at once, so /ready answers within about that.
PROBE_SECONDS = 1.5
READY_SECONDS = 2.0


class Probe(Protocol):
    """One dependency. ``check`` returns details for the body, or raises when the dependency is down;
    ``failure`` says in a sentence what that means (None: the exception's own message says it)."""

    @property
    def name(self) -> str: ...

    @property
    def failure(self) -> str | None: ...

    async def check(self) -> dict[str, Any]: ...


class Pingable(Protocol):
    async def ping(self) -> Any: ...


class DatabaseProbe:
    name = "database"
    failure = "the database is not reachable"

    def __init__(self, store: Pingable) -> None:
        self._store = store

    async def check(self) -> dict[str, Any]:
        await self._store.ping()  # one SELECT 1 on a pooled connection
        return {}


class RedisProbe:
    name = "redis"
    # Limits still hold (stricter, per process), but replicas no longer share them: not ready.
    failure = "Redis is not reachable; rate limits run on stricter per-process budgets"

    def __init__(self, client: Pingable) -> None:
        self._client = client

    async def check(self) -> dict[str, Any]:
        if not await self._client.ping():
            raise ConnectionError("Redis did not answer PONG")
        return {}


class Head(Protocol):
    number: int


class BlockSource(Protocol):
    async def block(self, confirmations: int = 0) -> Head: ...


class ChainProbe:
    """A chain whose compliance sources sign-ins read: its RPC must give the latest block."""

    def __init__(self, chain_id: int, rpc: BlockSource) -> None:
        self.name = f"chain:{chain_id}"
        self.failure = f"chain {chain_id}'s RPC does not answer; sign-ins cannot read its compliance sources"
        self._rpc = rpc

    async def check(self) -> dict[str, Any]:
        head = await self._rpc.block()
        return {"block": head.number}


class AuditSinkProbe:
    """ASVS 16.5.3: audit checkpoints must reach the write-once sink (``SinkHealth.status``)."""

    name = "audit_sink"
    failure = None

    def __init__(self, sink: Any) -> None:
        self._sink = sink

    async def check(self) -> dict[str, Any]:
        status: dict[str, Any] = self._sink.status()
        if not status["ok"]:
            raise OSError(f"the audit checkpoint sink cannot be written: {status['error']}")
        return {"last_checkpoint": status["last_checkpoint"]}


async def _run(probe: Probe) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        details = await asyncio.wait_for(probe.check(), PROBE_SECONDS)
    except TimeoutError:
        error = f"no answer within {PROBE_SECONDS} s"
        state: dict[str, Any] = {"state": "down", "error": error, "reason": probe.failure or error}
    except Exception as exc:  # any failure to reach the dependency means not ready
        # The class and message only: a driver's message names the host, never a password
        # (redis-py and asyncpg do not echo credentials).
        error = f"{exc.__class__.__name__}: {exc}"[:300]
        state = {"state": "down", "error": error, "reason": probe.failure or str(exc)}
    else:
        state = {"state": "up", **details}
    state["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return state


async def run_checks(probes: Sequence[Probe]) -> dict[str, dict[str, Any]]:
    """Every probe at once; a probe still running at READY_SECONDS is reported down."""
    tasks = {probe.name: asyncio.ensure_future(_run(probe)) for probe in probes}
    done, pending = await asyncio.wait(tasks.values(), timeout=READY_SECONDS)
    for task in pending:
        task.cancel()
    late = {"state": "down", "error": "no answer in time", "reason": "no answer in time"}
    return {name: task.result() if task in done else dict(late) for name, task in tasks.items()}


def probes_of(provider: Any) -> list[Probe]:
    """The app's dependencies: its database, Redis when configured, chains with compliance sources,
    and the audit sink."""
    probes: list[Probe] = [DatabaseProbe(provider.store)]
    shared = provider.guard.shared
    if shared is not None:
        probes.append(RedisProbe(shared.limits.client))
    probes += [ChainProbe(c.config.chain_id, c.rpc) for c in provider.chains.sources()]
    probes.append(AuditSinkProbe(provider.audit_sink))
    return probes


async def ready(request: Request) -> Response:
    if getattr(request.app.state, "draining", False):
        # Graceful shutdown (SIGTERM): stop receiving new traffic while in-flight requests finish.
        seconds = retry_after(request) or 5
        return JSONResponse(
            {"status": "draining"}, status_code=503, headers={**NO_STORE, "Retry-After": str(seconds)}
        )
    provider = request.app.state.provider
    checks = await run_checks(probes_of(provider))
    sink = provider.audit_sink.status()
    down = [name for name, state in checks.items() if state["state"] != "up"]
    if not down:
        return JSONResponse(
            {
                "status": "ready",
                "compliance": provider.settings.compliance,
                "checks": checks,
                "audit_sink": sink,
            }
        )
    reasons = "; ".join(checks[name].pop("reason") for name in down)
    unavailable = TemporarilyUnavailable(reasons)
    seconds = retry_after(request) or 5
    body = {
        **unavailable.to_json(),
        "status": "not_ready",
        "failing": down,
        "checks": checks,
        "audit_sink": sink,
    }
    return JSONResponse(body, status_code=503, headers={**NO_STORE, "Retry-After": str(seconds)})
