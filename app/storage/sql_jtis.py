"""Shared single-use JWT ids: RFC 7523 section 3 client assertions and RFC 9449 section 11.1 DPoP proofs.

One row per (kind, issuer, jti) in ``used_jtis``, keyed by a SHA-256 hash, so every worker on the database
accepts a given assertion or proof once. ``seen`` is a single INSERT ... ON CONFLICT DO UPDATE ... WHERE
the stored row has expired ... RETURNING: a fresh key is inserted, an expired row with the same key is
taken over in place, and a live row makes the statement change nothing and return no row (a replay).
PostgreSQL re-checks the conflict and the WHERE after waiting on a concurrent insert of the same key, and
SQLite has one writer at a time, so of concurrent calls with one key exactly one returns False.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.storage.models import Base
from app.storage.models_authz import UsedJti
from app.storage.writes import sqlite_write_lock, write_transaction

JtiKind = Literal["assertion", "dpop"]
# The current time (a Clock's ``now``), handed in so that storage imports nothing above it.
Now = Callable[[], datetime]
_TABLE = Base.metadata.tables[UsedJti.__tablename__]


def jti_key_hash(kind: JtiKind, issuer: str, jti: str) -> str:
    """SHA-256 hex over kind, issuer (client id or JWK thumbprint) and jti.

    The three are JSON-encoded as a list, not concatenated, so that ("ab", "c") and ("a", "bc") differ.
    """
    encoded = json.dumps([kind, issuer, jti], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


async def delete_expired_jtis(conn: AsyncConnection, now: datetime) -> int:
    """Delete rows whose JWT can no longer be presented; returns how many (for the caller's transaction)."""
    result = await conn.execute(delete(UsedJti).where(UsedJti.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]


class _SqlJtis:
    def __init__(
        self, engine: AsyncEngine, now: Now, kind: JtiKind, write_lock: asyncio.Lock | None = None
    ) -> None:
        self.engine = engine
        self._now = now
        self._kind: JtiKind = kind
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"used_jtis needs SQLite or PostgreSQL, not {self._dialect!r}")
        self._write_lock = sqlite_write_lock(engine, write_lock)  # pass SqlStore's: one queue per engine

    def _write(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return write_transaction(self.engine, self._write_lock)

    async def _seen(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        values = {
            "key_hash": jti_key_hash(self._kind, issuer, jti),
            "kind": self._kind,
            "expires_at": expires_at,
        }
        insert = (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(_TABLE)
        statement = (
            insert.values(**values)
            .on_conflict_do_update(
                index_elements=[_TABLE.c.key_hash],
                set_={"kind": insert.excluded.kind, "expires_at": insert.excluded.expires_at},
                where=_TABLE.c.expires_at <= self._now(),
            )
            .returning(_TABLE.c.key_hash)
        )
        async with self._write() as conn:
            claimed = (await conn.execute(statement)).first()
        return claimed is None

    async def purge_expired(self, now: datetime) -> int:
        """Delete every expired row (of both kinds); SqlStore.purge_expired does the same in housekeeping."""
        async with self._write() as conn:
            return await delete_expired_jtis(conn, now)


class SqlAssertionJtiStore(_SqlJtis):
    """app.oauth.client_auth.AssertionJtiStore shared by every worker on the database."""

    def __init__(self, engine: AsyncEngine, now: Now, write_lock: asyncio.Lock | None = None) -> None:
        super().__init__(engine, now, "assertion", write_lock)

    async def seen(self, client_id: str, jti: str, expires_at: datetime) -> bool:
        return await self._seen(client_id, jti, expires_at)


class SqlDpopJtiStore(_SqlJtis):
    """app.oauth.dpop.JtiStore shared by every worker on the database."""

    def __init__(self, engine: AsyncEngine, now: Now, write_lock: asyncio.Lock | None = None) -> None:
        super().__init__(engine, now, "dpop", write_lock)

    async def seen(self, jkt: str, jti: str, expires_at: datetime) -> bool:
        return await self._seen(jkt, jti, expires_at)
