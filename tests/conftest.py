"""Shared fixtures: settings on a temp data dir, both database backends, the app in-process, wallets."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.http.app import create_app
from app.settings import Settings, load_settings

PG_ENV = "PORTCULLIS_TEST_DATABASE_URL"
TEST_SECRET = "test-secret-" + "x" * 40


class FakeClock:
    """A clock the test moves by hand (a fake: the real one is app.clock.SystemClock)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.current = now or datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'portcullis.db'}"


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; skips the test when no server is configured."""
    admin = _pg_admin_url()
    if admin is None:
        pytest.skip(f"{PG_ENV} is not set: PostgreSQL storage tests need a server (see README)")
    url = make_url(admin).set(drivername="postgresql+asyncpg")
    name = f"portcullis_t_{uuid.uuid4().hex[:12]}"
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        await engine.dispose()
        pytest.skip(f"PostgreSQL at {PG_ENV} is not answering: {exc}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        async with engine.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Storage tests take this fixture to run on both backends."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'portcullis.db'}"
        return
    async with postgres_database() as url:
        yield url


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "secret_key": TEST_SECRET,
        "issuer": "http://127.0.0.1:8000",
        "dev_chain": False,  # tests that want the embedded chain ask for it
        "rate_limits": False,  # tests/http/test_rate_limits.py switches them on
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class Harness:
    client: httpx.AsyncClient
    settings: Settings
    clock: FakeClock
    app: Any


@pytest.fixture
async def harness(tmp_path: Path, clock: FakeClock, sqlite_url: str) -> AsyncIterator[Harness]:
    async with running_app(make_settings(tmp_path, database_url=sqlite_url), clock) as h:
        yield h


class running_app:
    """The ASGI app in-process with its lifespan running, and an httpx client on it."""

    def __init__(self, settings: Settings, clock: FakeClock) -> None:
        self.settings = settings
        self.clock = clock
        self.app = create_app(settings, clock=clock)

    async def __aenter__(self) -> Harness:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, raise_app_exceptions=False),
            base_url=self.settings.issuer,
        )
        return Harness(self._client, self.settings, self.clock, self.app)

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._lifespan.__aexit__(None, None, None)


@pytest.fixture
def wallet() -> Iterator[Any]:
    yield Account.create()


def siwe_text(
    offer: dict[str, Any],
    address: str,
    *,
    issued_at: datetime,
    statement: str | None = "Sign in to Portcullis tests.",
    **override: Any,
) -> str:
    """An EIP-4361 message for a nonce offer, written out by hand (independent of app.siwe's builder)."""
    f = {
        "domain": offer["domain"],
        "uri": offer["uri"],
        "chain_id": offer["chain_id"],
        "nonce": offer["nonce"],
        "issued_at": issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expiration_time": None,
        "not_before": None,
    }
    f.update(override)
    if "issued_at_text" in f:
        f["issued_at"] = f.pop("issued_at_text")
    origin = f["domain"] if offer.get("scheme", "https") == "https" else f"{offer['scheme']}://{f['domain']}"
    lines = [f"{origin} wants you to sign in with your Ethereum account:", address, ""]
    lines += [statement, ""] if statement else [""]
    lines += [f"URI: {f['uri']}", "Version: 1", f"Chain ID: {f['chain_id']}", f"Nonce: {f['nonce']}"]
    lines.append(f"Issued At: {f['issued_at']}")
    if f["expiration_time"]:
        lines.append(f"Expiration Time: {f['expiration_time']}")
    if f["not_before"]:
        lines.append(f"Not Before: {f['not_before']}")
    return "\n".join(lines)


def sign(account: Any, message: str) -> str:
    sig: bytes = account.sign_message(encode_defunct(text=message)).signature
    return "0x" + bytes(sig).hex()
