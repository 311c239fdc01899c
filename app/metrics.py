"""Prometheus metrics (the text exposition format, through prometheus-client): one ``Metrics`` per app.

Every instrument lives in the app's own ``CollectorRegistry``, never in prometheus-client's global one, so
each test builds a fresh app with fresh counters. With several worker processes (``PORTCULLIS_METRICS_DIR``,
which the server exports as prometheus-client's ``PROMETHEUS_MULTIPROC_DIR`` before the library is first
imported: :func:`app.settings.export_metrics_environment`) every process writes its samples to memory-mapped
files in that directory and a scrape of any worker adds them up (``MultiProcessCollector``).

prometheus-client is imported here lazily, inside functions: it chooses between in-process and multiprocess
values once, when it is first imported, from the environment; importing it as a side effect of importing
``app`` would fix that choice before the serve command could make it. The names and labels are listed in
docs/DEPLOY.md ("Metrics"); label values come from code (route templates, error codes, grant names), never
from request data, so the number of series stays bounded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

# Seconds. HTTP: a sign-in takes a few ms, a chain read tens of ms, a 503 after a dependency's timeout 1-5 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# An audit batch's transaction: a fraction of a ms on SQLite, about one round trip or three on PostgreSQL.
APPEND_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
GRANTS = ("siwe", "authorization_code", "refresh_token", "client_credentials")

Sampler = Callable[["Metrics"], None]


class Metrics:
    """The instruments of one app (docs/DEPLOY.md, "Metrics"), and its exposition.

    ``multiprocess_dir``: the directory the worker processes share (prometheus-client's multiprocess mode);
    None for one process. ``samplers`` are called before each scrape (and by the app's sampling task) to set
    the gauges that describe a state rather than count events (the database pools).
    """

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

        if multiprocess_dir is not None and values.ValueClass is values.MutexValue:
            raise RuntimeError(
                "PORTCULLIS_METRICS_DIR is set, but prometheus_client was imported before"
                " PROMETHEUS_MULTIPROC_DIR was exported (app.settings.export_metrics_environment)"
            )
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        self.samplers: list[Sampler] = []
        reg = self.registry
        self.http_requests = Counter(
            "portcullis_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=reg,
        )
        self.http_duration = Histogram(
            "portcullis_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.signins = Counter(
            "portcullis_signins",
            "Wallet sign-ins (POST /siwe/verify and the hosted page), by outcome and the check that failed",
            ["outcome", "check"],
            registry=reg,
        )
        self.tokens_issued = Counter(
            "portcullis_tokens_issued",
            "Token responses issued, by grant (siwe, authorization_code, refresh_token, client_credentials)",
            ["grant"],
            registry=reg,
        )
        # The children every sign-in and token response touches, labelled once (no lookup per request).
        self.signed_in = self.signins.labels("success", "")
        self.issued = {grant: self.tokens_issued.labels(grant) for grant in GRANTS}
        self.rate_limited = Counter(
            "portcullis_rate_limit_refusals",
            "Requests refused with 429, by route template and cause (budget: a rate limit; lock: a lock)",
            ["route", "cause"],
            registry=reg,
        )
        self.locks = Counter(
            "portcullis_locks",
            "Failure-spike locks started (ip, address, client_ip, client)",
            ["what"],
            registry=reg,
        )
        self.chain_reads = Counter(
            "portcullis_chain_reads",
            "Compliance decisions asked of a chain's reader, by chain and result (cached, read, error)",
            ["chain_id", "result"],
            registry=reg,
        )
        self.chain_read_duration = Histogram(
            "portcullis_chain_read_duration_seconds",
            "Time of one compliance read from the chain (block, logs, one Multicall), cache misses only",
            ["chain_id"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.follower_lag = Gauge(
            "portcullis_chain_follower_lag_blocks",
            "Confirmed blocks the chain's log follower has not read yet, after its last poll",
            ["chain_id"],
            multiprocess_mode="livemax",
            registry=reg,
        )
        self.audit_append_duration = Histogram(
            "portcullis_audit_append_duration_seconds",
            "Time of one group-commit transaction: the batch's changes and its audit entries",
            buckets=APPEND_BUCKETS,
            registry=reg,
        )
        self.audit_entries = Counter(
            "portcullis_audit_entries", "Audit entries appended through group commit", registry=reg
        )
        self.db_pool = Gauge(
            "portcullis_db_pool_connections",
            "Database pool connections by pool (hot: the asyncpg pool; sqlalchemy) and state (in_use, idle,"
            " max)",
            ["pool", "state"],
            multiprocess_mode="livesum",
            registry=reg,
        )

    def sample(self) -> None:
        """Run the samplers (set the state gauges now); one that fails leaves its gauges as they were."""
        for sampler in self.samplers:
            try:
                sampler(self)
            except Exception:  # noqa: S112 (a scrape must not fail because one pool is closing)
                continue

    def exposition(self) -> bytes:
        """The text format of every sample: this process's, or in multiprocess mode every worker's."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        self.sample()
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        merged: CollectorRegistry = CollectorRegistry()
        MultiProcessCollector(merged, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def process_exited(self) -> None:
        """Multiprocess mode: this worker's live gauges stop counting (its counters stay in the totals)."""
        if self.multiprocess_dir is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), str(self.multiprocess_dir))  # type: ignore[no-untyped-call]


def prepare_directory(path: Path) -> None:
    """Before the first worker starts: create the directory and drop the files of processes that are gone
    (a previous run's), so counters start from zero without touching a sibling server's live files."""
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pool_sampler(name: str, pool: Any) -> Sampler:
    """A sampler for an asyncpg pool (``get_size``, ``get_idle_size``, ``get_max_size``) or a SQLAlchemy
    ``QueuePool`` (``checkedout``, ``checkedin``, ``size``), whichever ``pool`` is; None pools are skipped."""

    def sample(metrics: Metrics) -> None:
        current = pool() if callable(pool) else pool
        if current is None:
            return
        gauge = metrics.db_pool
        if hasattr(current, "get_idle_size"):
            size, idle = current.get_size(), current.get_idle_size()
            gauge.labels(name, "in_use").set(size - idle)
            gauge.labels(name, "idle").set(idle)
            gauge.labels(name, "max").set(current.get_max_size())
        elif hasattr(current, "checkedout"):
            gauge.labels(name, "in_use").set(current.checkedout())
            gauge.labels(name, "idle").set(current.checkedin())
            gauge.labels(name, "max").set(current.size())

    return sample
