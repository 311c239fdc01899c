"""GET /metrics (Prometheus text format): the counters move with the right labels after real requests, it
is off in production by default, and PORTCULLIS_METRICS=port:N serves it there and not on the main port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from prometheus_client.parser import text_string_to_metric_families

from app.settings import SettingsError, load_settings
from app.storage.hot import POOL_SIZE
from tests.conftest import (
    FakeClock,
    Harness,
    make_settings,
    postgres_database,
    running_app,
    sign,
    siwe_text,
)
from tests.integration.server import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(h: Harness) -> Samples:
    reply = await h.client.get("/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(reply.text)


async def sign_in(h: Harness, wallet: Any, signer: Any = None) -> httpx.Response:
    offer = (await h.client.post("/siwe/nonce")).json()
    message = siwe_text(offer, wallet.address, issued_at=h.clock.now())
    body = {"message": message, "signature": sign(signer or wallet, message)}
    return await h.client.post("/siwe/verify", json=body)


async def test_a_sign_in_and_a_token_request_move_the_counters(harness: Harness, wallet: Any) -> None:
    before = await scrape(harness)
    tokens = (await sign_in(harness, wallet)).json()
    refreshed = await harness.client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    forged = await sign_in(harness, wallet, signer=Account.create())
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_signature"
    assert (await harness.client.get("/register/some-client")).status_code == 404
    assert (await harness.client.get("/no/such/path")).status_code == 404
    after = await scrape(harness)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "portcullis_http_requests_total"
    assert moved(requests, route="/siwe/verify", method="POST", status="200") == 1
    assert moved(requests, route="/siwe/verify", method="POST", status="401") == 1
    assert moved(requests, route="/siwe/nonce", method="POST", status="201") == 2
    assert moved(requests, route="/token", method="POST", status="200") == 1
    # the route template, never the raw path; one series for every unknown path
    assert moved(requests, route="/register/{client_id}", method="GET", status="404") == 1
    assert moved(requests, route="<unmatched>", method="GET", status="404") == 1
    assert not any("some-client" in str(labels) or "/no/such" in str(labels) for _, labels in after)
    duration = "portcullis_http_request_duration_seconds_count"
    assert moved(duration, route="/token", method="POST", status="200") == 1
    assert moved("portcullis_signins_total", outcome="success", check="") == 1
    assert moved("portcullis_signins_total", outcome="failure", check="invalid_signature") == 1
    assert moved("portcullis_tokens_issued_total", grant="siwe") == 1
    assert moved("portcullis_tokens_issued_total", grant="refresh_token") == 1
    assert moved("portcullis_audit_append_duration_seconds_count") >= 1
    # a sign-in, a refresh and a refused sign-in: three entries, whatever the batching
    assert moved("portcullis_audit_entries_total") == 3
    assert value(after, "portcullis_db_pool_connections", pool="sqlalchemy", state="max") >= 1


async def test_rate_limit_refusals_and_locks_are_counted(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url, lock_ip_threshold=3)
    async with running_app(settings, FakeClock()) as h:
        wallet = Account.create()
        codes = [(await sign_in(h, wallet, signer=Account.create())).status_code for _ in range(3)]
        assert codes == [401, 401, 401]  # the third failure locks the IP
        refused = [(await h.client.post("/siwe/nonce")).status_code for _ in range(3)]
        assert refused == [429, 429, 429]
        after = await scrape(h)
    assert value(after, "portcullis_locks_total", what="ip") == 1
    assert value(after, "portcullis_rate_limit_refusals_total", route="/siwe/nonce", cause="lock") >= 3
    assert value(after, "portcullis_signins_total", outcome="failure", check="invalid_signature") == 3


async def test_budget_refusals_are_counted_by_route(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url, rate_limits=True)
    async with running_app(settings, FakeClock()) as h:
        codes = [(await h.client.post("/siwe/nonce")).status_code for _ in range(40)]
        after = await scrape(h)
    refused = value(after, "portcullis_rate_limit_refusals_total", route="/siwe/nonce", cause="budget")
    assert refused == codes.count(429) > 0


async def test_chain_reads_and_follower_lag(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url, dev_chain=True, issuer="")
    async with running_app(settings, FakeClock()) as h:
        wallet = Account.create()  # no record on the development chain: refused after the chain read
        refused = await sign_in(h, wallet)
        assert refused.status_code == 403, refused.text
        after = await scrape(h)
    assert value(after, "portcullis_chain_reads_total", chain_id="31337", result="read") == 1
    assert value(after, "portcullis_chain_read_duration_seconds_count", chain_id="31337") == 1
    assert value(after, "portcullis_signins_total", outcome="failure", check="not_eligible") == 1
    assert ("portcullis_chain_follower_lag_blocks", frozenset({("chain_id", "31337")})) in after


async def test_production_serves_no_metrics_by_default(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(
        tmp_path,
        database_url=sqlite_url,
        mode="production",
        issuer="https://auth.example.com",
        compliance="off",
    )
    assert settings.metrics == "off" and settings.log_format == "json"
    async with running_app(settings, FakeClock()) as h:
        assert (await h.client.get("/health")).status_code == 200
        assert (await h.client.get("/metrics")).status_code == 404


async def test_a_separate_port_serves_metrics_there_only(tmp_path: Path, sqlite_url: str) -> None:
    port = free_port()
    settings = make_settings(
        tmp_path,
        database_url=sqlite_url,
        mode="production",
        issuer="https://auth.example.com",
        compliance="off",
        metrics=f"port:{port}",
    )
    assert settings.metrics_port == port
    async with running_app(settings, FakeClock()) as h:
        assert (await h.client.get("/health")).status_code == 200
        assert (await h.client.get("/metrics")).status_code == 404
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"http://127.0.0.1:{port}/metrics")
            assert reply.status_code == 200
            samples = parse(reply.text)
            other = await client.get(f"http://127.0.0.1:{port}/health")
            assert other.status_code == 404  # the metrics port serves nothing else
    assert value(samples, "portcullis_http_requests_total", route="/health", method="GET", status="200") == 1
    assert (
        value(samples, "portcullis_http_requests_total", route="<unmatched>", method="GET", status="404") == 1
    )


def test_the_metrics_setting_is_checked(tmp_path: Path) -> None:
    for bad, why in (
        ("sometimes", "PORTCULLIS_METRICS"),
        ("port:70000", "port:N takes a port number from 1 to 65535"),
        ("port:8000", "must differ from PORTCULLIS_PORT"),
    ):
        with pytest.raises(SettingsError, match=why):
            load_settings(data_dir=tmp_path, metrics=bad)
    assert load_settings(data_dir=tmp_path).metrics == "on"
    assert load_settings(data_dir=tmp_path, metrics="port:9100").metrics_port == 9100


async def test_postgresql_pools_are_sampled(tmp_path: Path) -> None:
    async with postgres_database() as url:
        settings = make_settings(tmp_path, database_url=url)
        async with running_app(settings, FakeClock()) as h:
            assert (await sign_in(h, Account.create())).status_code == 200
            after = await scrape(h)
    assert value(after, "portcullis_db_pool_connections", pool="hot", state="max") == POOL_SIZE
    in_use = value(after, "portcullis_db_pool_connections", pool="hot", state="in_use")
    idle = value(after, "portcullis_db_pool_connections", pool="hot", state="idle")
    assert in_use == 0 and idle >= 1  # the sign-in's connection is back in the pool
