"""`portcullis serve --workers 2` on PostgreSQL with PORTCULLIS_METRICS_DIR: both workers serve, and any
scrape (whichever worker answers it) reports the sum of both (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.replicas import postgres_database_sync, replica_env
from tests.integration.server import ServerProcess

REQUESTS = 200


def health_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("requests_total") and sample.labels.get("route") == "/health":
                return float(sample.value)
    return 0.0


def test_two_workers_count_into_one_sum(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    with postgres_database_sync() as url:
        env = replica_env(url, "http://127.0.0.1:18360", PORTCULLIS_METRICS_DIR=str(metrics))
        with ServerProcess(tmp_path / "data", port=18360, PORTCULLIS_WORKERS="2", **env) as server:

            async def load() -> None:
                async def one() -> None:  # a connection of its own: the kernel picks a worker for each
                    async with httpx.AsyncClient(base_url=server.url) as http:
                        assert (await http.get("/health")).status_code == 200

                for _ in range(REQUESTS // 20):
                    await asyncio.gather(*(one() for _ in range(20)))

            asyncio.run(load())
            scrapes = [health_count(httpx.get(f"{server.url}/metrics").text) for _ in range(6)]
    pids = {p.stem.rsplit("_", 1)[1] for p in metrics.glob("counter_*.db")}
    assert len(pids) == 2, pids  # both workers served and counted
    assert scrapes == [REQUESTS] * 6, scrapes  # every scrape is the sum, whichever worker answered
