"""Bot token issuances per second (RFC 7523 JWT bearer under a delegation) beside client_credentials.

A real ``portcullis serve`` process with its development chain, on SQLite and, when
PORTCULLIS_TEST_DATABASE_URL points at a PostgreSQL server, on PostgreSQL. The wallet (the chain's
professional demo wallet) delegates ``perps:trade`` with an ETH-PERP detail to a P-256 bot key once; then
each bot request is one ``POST /token`` with a fresh assertion and a fresh DPoP proof (made before the pass,
client side, not timed): the server verifies the proof and the assertion, reads the delegation, consumes the
jti, asks the chain's cached decision and the policy, signs the token and appends ``delegation.used``.
``client_credentials`` (client_secret_basic, scope ``service:positions:read``) runs in the same server,
in interleaved passes (bot, cc, bot, cc, ...), so both see the same machine load. Prints per-pass rates,
then the median with its range (min-max) and the ratio.

    .venv/bin/python bench/bot_tokens.py [--seconds 5] [--passes 5] [--concurrency 8] [--port 19150]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from eth_account import Account

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.chain.devchain import DEV_ACCOUNTS
from bench.login_http import _pg_database
from bench.machine import machine_note
from tests.conftest import sign, siwe_text
from tests.integration.server import ServerProcess
from tests.oauth.bots import JWT_BEARER, TRADE, Bot, capabilities, recap_uri, translation

SECRET = "bench-bot-tokens-secret-0123456789abcdef"
SCOPE = "service:positions:read"
POOL = 6000  # requests made ready per pass; a pass ends at --seconds or when its pool is spent


def clients_file(data: Path) -> Path:
    path = data / "clients.json"
    client = {
        "client_id": "bench",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": SECRET,
        "scope": [SCOPE],
    }
    path.write_text(json.dumps([client]))
    return path


def delegate(http: httpx.Client, bot: Bot) -> str:
    wallet = Account.from_key(DEV_ACCOUNTS[2].private_key)
    offer = http.post("/siwe/nonce").json()
    att = capabilities(["perps:trade"], [TRADE])
    now = datetime.now(UTC).replace(microsecond=0)
    text = siwe_text(
        {**offer, "uri": f"urn:ietf:params:oauth:jwk-thumbprint:sha-256:{bot.jkt}"},
        wallet.address,
        issued_at=now,
        statement="Bench bot. " + translation(att),
        expiration_time=(now + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    text += "\nResources:\n- " + recap_uri(att)
    reply = http.post("/delegations", json={"message": text, "signature": sign(wallet, text)})
    reply.raise_for_status()
    delegation_id: str = reply.json()["delegation_id"]
    return delegation_id


Request = tuple[dict[str, str], dict[str, str]]  # form, headers


def bot_requests(url: str, bot: Bot, delegation_id: str, n: int) -> list[Request]:
    now = datetime.now(UTC)
    return [
        (
            {"grant_type": JWT_BEARER, "assertion": bot.assertion(url, delegation_id, now)},
            {"DPoP": bot.proof("POST", f"{url}/token", now)},
        )
        for _ in range(n)
    ]


def cc_requests(n: int) -> list[Request]:
    basic = {"Authorization": "Basic " + base64.b64encode(f"bench:{SECRET}".encode()).decode()}
    return [({"grant_type": "client_credentials", "scope": SCOPE}, basic)] * n


async def run_pass(url: str, pool: list[Request], concurrency: int, seconds: float) -> tuple[int, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    done = 0
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while pool and time.perf_counter() < deadline:
                form, headers = pool.pop()
                reply = await client.post("/token", data=form, headers=headers)
                if reply.status_code != 200:
                    raise RuntimeError(f"token request failed: {reply.status_code} {reply.text}")
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, time.perf_counter() - start


def summary(rates: list[float]) -> str:
    return f"{statistics.median(rates):8.1f} /s  (range {min(rates):.1f}-{max(rates):.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--port", type=int, default=None, help="the server's port (default: a free one)")
    args = parser.parse_args()

    base = {"PORTCULLIS_RATE_LIMITS": "false"}
    backends: list[tuple[str, dict[str, str]]] = [("sqlite", dict(base))]
    pg = os.environ.get("PORTCULLIS_TEST_DATABASE_URL")
    pg_name = f"portcullis_bench_{uuid.uuid4().hex[:8]}"
    if pg:
        backends.append(
            ("postgresql", {**base, "PORTCULLIS_DATABASE_URL": _pg_database(pg, pg_name, create=True)})
        )
    print(f"machine: {machine_note()}, server and client on one machine")
    print(f"load average at start {os.getloadavg()[0]:.2f}")
    print(f"{args.passes} interleaved passes of {args.seconds:g} s each, concurrency {args.concurrency}")
    try:
        for name, env in backends:
            with tempfile.TemporaryDirectory() as tmp:
                data = Path(tmp)
                env = {**env, "PORTCULLIS_CLIENTS_FILE": str(clients_file(data))}
                with (
                    ServerProcess(data, port=args.port, **env) as server,
                    httpx.Client(base_url=server.url, timeout=30) as http,
                ):
                    bot = Bot()
                    delegation_id = delegate(http, bot)
                    rates: dict[str, list[float]] = {"bot (jwt-bearer + DPoP)": [], "client_credentials": []}
                    # one unmeasured pass each: connections, caches, the chain decision
                    asyncio.run(run_pass(server.url, bot_requests(server.url, bot, delegation_id, 50), 4, 5))
                    asyncio.run(run_pass(server.url, cc_requests(50), 4, 5))
                    for _ in range(args.passes):
                        for label in rates:
                            if label.startswith("bot"):
                                pool = bot_requests(server.url, bot, delegation_id, POOL)
                            else:
                                pool = cc_requests(POOL)
                            count, elapsed = asyncio.run(
                                run_pass(server.url, pool, args.concurrency, args.seconds)
                            )
                            rates[label].append(count / elapsed)
                    for label, values in rates.items():
                        passes = " ".join(f"{v:.0f}" for v in values)
                        print(f"{name:<11} {label:<26} {summary(values)}   passes: {passes}", flush=True)
                    ratio = statistics.median(rates["bot (jwt-bearer + DPoP)"]) / statistics.median(
                        rates["client_credentials"]
                    )
                    print(f"{name:<11} bot / client_credentials: {ratio:.2f}", flush=True)
    finally:
        if pg:
            _pg_database(pg, pg_name, create=False)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
