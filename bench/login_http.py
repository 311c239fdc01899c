"""Complete wallet sign-ins per second over HTTP against a real ``portcullis serve`` process.

One sign-in = POST /siwe/nonce, sign the EIP-4361 message (client side, coincurve), POST /siwe/verify.
Measured at concurrency 8 (or the levels given) on the embedded default (SQLite) and, when
PORTCULLIS_TEST_DATABASE_URL points at a PostgreSQL server, on PostgreSQL too. Prints sign-ins/s, p50/p99
latency of the whole sign-in, and the CPU milliseconds per sign-in of the server process and of the
PostgreSQL backends serving its database (from /proc/<pid>/stat; PostgreSQL's background writer,
checkpointer and WAL writer are not counted).

    .venv/bin/python bench/login_http.py [--seconds 10] [--concurrency 8] [--port 18700]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from coincurve import PrivateKey
from eth_hash.auto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.siwe.eip55 import to_checksum
from bench.machine import machine_note
from tests.integration.server import ServerProcess


class Wallet:
    def __init__(self) -> None:
        self.key = PrivateKey()
        self.address = to_checksum(keccak(self.key.public_key.format(compressed=False)[1:])[-20:])

    def sign(self, text: str) -> str:
        data = text.encode()
        digest = keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)
        sig = self.key.sign_recoverable(digest, hasher=None)
        return "0x" + sig[:64].hex() + f"{sig[64] + 27:02x}"


def message(offer: dict[str, object], address: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{offer['scheme']}://{offer['domain']} wants you to sign in with your Ethereum account:\n"
        f"{address}\n\n"
        f"Benchmark sign-in.\n\nURI: {offer['uri']}\nVersion: 1\nChain ID: {offer['chain_id']}\n"
        f"Nonce: {offer['nonce']}\nIssued At: {now}"
    )


async def one_sign_in(client: httpx.AsyncClient, wallet: Wallet) -> float:
    start = time.perf_counter()
    offer = (await client.post("/siwe/nonce")).json()
    text = message(offer, wallet.address)
    reply = await client.post("/siwe/verify", json={"message": text, "signature": wallet.sign(text)})
    if reply.status_code != 200:
        raise RuntimeError(f"sign-in failed: {reply.status_code} {reply.text}")
    return time.perf_counter() - start


async def run_level(
    url: str, concurrency: int, seconds: float, meter: CpuMeter
) -> tuple[int, list[float], float, tuple[float, float]]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        for _ in range(3):  # warm-up
            await one_sign_in(client, Wallet())
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            # A new wallet each time: one wallet signing in hundreds of times a minute is what the risk
            # engine exists to refuse (velocity), and it would.
            while time.perf_counter() < deadline:
                latencies.append(await one_sign_in(client, Wallet()))

        cpu_before = meter.read()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        cpu = CpuMeter.used(cpu_before, meter.read())
    return len(latencies), latencies, elapsed, cpu


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 once it has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_backends(database: str) -> list[int]:
    """The PostgreSQL backend processes connected to ``database`` (their title names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            pids.append(int(entry.name))
    return pids


class CpuMeter:
    """CPU seconds used by the server process and its PostgreSQL backends between two readings."""

    def __init__(self, server_pid: int, database: str | None) -> None:
        self.server_pid, self.database = server_pid, database

    def read(self) -> tuple[float, dict[int, float]]:
        backends = postgres_backends(self.database) if self.database else []
        return cpu_seconds(self.server_pid), {pid: cpu_seconds(pid) for pid in backends}

    @staticmethod
    def used(
        before: tuple[float, dict[int, float]], after: tuple[float, dict[int, float]]
    ) -> tuple[float, float]:
        server = after[0] - before[0]
        pg = sum(value - before[1].get(pid, 0.0) for pid, value in after[1].items())
        return server, pg


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


def client_cost(samples: int = 300) -> float:
    wallet = Wallet()
    offer = {"scheme": "http", "domain": "x", "uri": "http://x", "chain_id": 1, "nonce": "a" * 22}
    start = time.perf_counter()
    for _ in range(samples):
        wallet.sign(message(offer, wallet.address))
    return (time.perf_counter() - start) / samples * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", default="8")
    parser.add_argument("--port", type=int, default=None, help="the server's port (default: a free one)")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    # One client machine plays many users: per-IP limits off, dev chain off (plain EOA sign-ins).
    base = {"PORTCULLIS_RATE_LIMITS": "false", "PORTCULLIS_DEV_CHAIN": "false"}
    backends: list[tuple[str, dict[str, str]]] = [("sqlite", dict(base))]
    pg = os.environ.get("PORTCULLIS_TEST_DATABASE_URL")
    pg_name = f"portcullis_bench_{uuid.uuid4().hex[:8]}"
    if pg:
        backends.append(
            ("postgresql", {**base, "PORTCULLIS_DATABASE_URL": _pg_database(pg, pg_name, create=True)})
        )

    print(f"machine: {machine_note()}, server and client on one machine")
    print(f"client-side signing cost per sign-in: {client_cost():.0f} us (included in the latencies)")
    print(f"load average at start {os.getloadavg()[0]:.2f}")
    print(
        f"{'backend':<11} {'conc':>4} {'sign-ins':>9} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'server cpu ms':>13} {'pg cpu ms':>9}"
    )
    for name, env in backends:
        database = pg_name if name == "postgresql" else None
        with (
            tempfile.TemporaryDirectory() as data,
            ServerProcess(Path(data), port=args.port, **env) as server,
        ):
            assert server.proc is not None
            meter = CpuMeter(server.proc.pid, database)
            for level in levels:
                count, lat, elapsed, cpu = asyncio.run(run_level(server.url, level, args.seconds, meter))
                rate, p50, p99 = count / elapsed, pct(lat, 50), pct(lat, 99)
                server_ms, pg_ms = (1000 * used / count for used in cpu)
                pg_cell = f"{pg_ms:>9.2f}" if database else f"{'-':>9}"
                print(
                    f"{name:<11} {level:>4} {count:>9} {rate:>8.1f} {p50:>8.2f} {p99:>8.2f} "
                    f"{server_ms:>13.2f} {pg_cell}",
                    flush=True,
                )
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    if pg:
        _pg_database(pg, pg_name, create=False)
    return 0


def _pg_database(admin_url: str, name: str, create: bool) -> str:
    """Create (or drop) a throwaway database so the benchmark never touches real data."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    url = make_url(admin_url).set(drivername="postgresql+asyncpg")

    async def run() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            sql = f'CREATE DATABASE "{name}"' if create else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(run())
    return url.set(database=name).render_as_string(hide_password=False)


if __name__ == "__main__":
    raise SystemExit(main())
