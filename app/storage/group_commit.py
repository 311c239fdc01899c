"""Group commit: concurrent writes and their audit entries, many requests to one transaction.

A request hands in its change (a body, app.storage.hot) and the audit entry it causes; a single writer
task takes whatever has queued (at most ``max_batch`` requests, lingering at most ``max_wait`` seconds
for more) and runs it all in ONE transaction: every change in turn, then one append of all their entries
(the ``audit_head`` row bumped once by the batch's size, the entries inserted, the new head hash stored).
A request's answer is released only after that transaction committed, so "no token without its audit
entry" holds as it did with one transaction per request; the entries of one batch get consecutive
sequence numbers and are chained in order, exactly as one-by-one appends would have chained them.

A change that refuses (a nonce already used, a code redeemed) before writing anything just answers its
error and the batch goes on. A change that refuses *after* writing (a refresh rotation whose check fails
once the token row is stamped) would leave its write in the batch: the batch is rolled back, that
request gets its error, and the others run again in a fresh batch. A SIGKILL at any point leaves either
the whole batch (changes and entries) or none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from sqlalchemy import Integer, bindparam, insert, update
from sqlalchemy.engine import Dialect

from app.audit.chain import FIELDS
from app.metrics import Metrics
from app.storage.hot import Body, HotDriver, Result, Sql, Step
from app.storage.models import AuditEntry, AuditHead, Base
from app.storage.records import AuditRecord

T = TypeVar("T")
EntryHasher = Callable[[dict[str, Any]], str]
AuditOf = AuditRecord | None | Callable[[Any], AuditRecord | None]

DEFAULT_MAX_BATCH: Final = 64
DEFAULT_MAX_WAIT: Final = 0.001  # seconds a batch waits for company once its first request is queued

log = logging.getLogger("portcullis.storage")

_HEAD = Base.metadata.tables[AuditHead.__tablename__]
_LOG = Base.metadata.tables[AuditEntry.__tablename__]
_ENTRY_KEYS = (*FIELDS, "hash")  # an entry's fields (app.audit.chain) and its own hash


class AuditStatements:
    """The three statements of a batch's append, compiled once for the dialect."""

    def __init__(self, dialect: Dialect) -> None:
        bump = _HEAD.c.seq + bindparam("n", type_=Integer)
        self.next_seq = Sql(
            update(_HEAD).where(_HEAD.c.id == 1).values(seq=bump).returning(_HEAD.c.seq, _HEAD.c.hash),
            dialect,
        )
        self.insert_entry = Sql(insert(_LOG), dialect, _ENTRY_KEYS)
        self.set_head_hash = Sql(
            update(_HEAD).where(_HEAD.c.id == 1).values(hash=bindparam("digest")), dialect
        )


def append_entries(
    statements: AuditStatements, records: list[AuditRecord], hasher: EntryHasher
) -> Generator[Step, Result, int]:
    """Append ``records`` in order inside the body's transaction; returns the last sequence number.

    ``UPDATE audit_head SET seq = seq + n`` takes the head row lock (PostgreSQL) until commit, so the n
    numbers are this transaction's alone and a rollback leaves no gap (as app.storage.sql_audit.append).
    """
    head = (yield Step(statements.next_seq, {"n": len(records)})).first()
    assert head is not None, "audit_head row missing"
    last, prev = int(head[0]), str(head[1])
    rows = []
    for seq, record in enumerate(records, start=last - len(records) + 1):
        entry = record.entry(seq, prev)
        prev = hasher(entry)
        rows.append(
            {**entry, "data": json.dumps(entry["data"], sort_keys=True, separators=(",", ":")), "hash": prev}
        )
    yield Step(statements.insert_entry, many=rows)
    yield Step(statements.set_head_hash, {"digest": prev})
    return last


@dataclass(slots=True)
class _Item:
    make: Callable[[], Body[Any]] | None
    audit: AuditOf
    future: asyncio.Future[Any]
    value: Any = None
    error: Exception | None = None


class _Poisoned(Exception):
    """A change refused after writing: the batch rolls back without it."""

    def __init__(self, item: _Item, error: Exception) -> None:
        super().__init__(type(error).__name__)
        self.item, self.error = item, error


@dataclass(slots=True)
class _Wrote:
    wrote: bool = False


def _tracked(body: Body[T], seen: _Wrote) -> Body[T]:
    """Run ``body``, noting whether one of its statements changed a row."""
    try:
        step = next(body)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    while True:
        result = yield step
        if step.sql.writes and result.rowcount > 0:
            seen.wrote = True
        try:
            step = body.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


class GroupCommit:
    """The one writer of audited changes for a store (see the module docstring)."""

    def __init__(
        self,
        driver: HotDriver,
        dialect: Dialect,
        hasher: EntryHasher,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait: float = DEFAULT_MAX_WAIT,
        metrics: Metrics | None = None,
    ) -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError("GroupCommit: max_batch >= 1 and max_wait >= 0")
        self._driver = driver
        self._audit = AuditStatements(dialect)
        self._hasher = hasher
        self._max_batch, self._max_wait = max_batch, max_wait
        self._queue: list[_Item] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self._metrics = metrics
        self._appended = 0  # entries the last committed batch appended

    async def submit(self, make: Callable[[], Body[T]] | None, audit: AuditOf) -> T:
        """Run ``make()``'s change with ``audit`` (a record, None, or a function of the change's value)
        in the next batch; return the change's value (with no change: the entry's sequence number) once the
        batch committed, or raise its error."""
        if self._closed:
            raise RuntimeError("GroupCommit: closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(make, audit, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="portcullis-group-commit")
        result: T = await future
        return result

    async def _write_all(self) -> None:
        while self._queue:
            if len(self._queue) < self._max_batch and self._max_wait > 0:
                await asyncio.sleep(self._max_wait)
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            await self._commit(batch)

    async def _commit(self, batch: list[_Item]) -> None:
        pending = batch
        while pending:
            start = time.perf_counter()
            try:
                await self._driver.write(self._body(pending))
            except _Poisoned as poisoned:
                _settle(poisoned.item, None, poisoned.error)
                pending = [item for item in pending if item is not poisoned.item]
                continue
            except BaseException as exc:
                for item in pending:
                    _settle(item, None, exc if isinstance(exc, Exception) else RuntimeError("writer stopped"))
                if not isinstance(exc, Exception):
                    raise
                return
            if self._metrics is not None:
                self._metrics.audit_append_duration.observe(time.perf_counter() - start)
                self._metrics.audit_entries.inc(self._appended)
            for item in pending:
                _settle(item, item.value, item.error)
            return

    def _body(self, batch: list[_Item]) -> Body[None]:
        records: list[AuditRecord] = []
        owners: list[_Item] = []  # the item of each record, in order
        self._appended = 0
        for item in batch:
            item.value, item.error = None, None
            if item.make is not None:
                seen = _Wrote()
                try:
                    item.value = yield from _tracked(item.make(), seen)
                except Exception as exc:
                    if seen.wrote:
                        raise _Poisoned(item, exc) from exc
                    item.error = exc
                    continue
            audit = item.audit(item.value) if callable(item.audit) else item.audit
            if audit is not None:
                records.append(audit)
                owners.append(item)
        if records:
            last = yield from append_entries(self._audit, records, self._hasher)
            self._appended = len(records)
            for seq, item in enumerate(owners, start=last - len(records) + 1):
                if item.make is None:  # an entry on its own: its value is its sequence number
                    item.value = seq

    async def close(self) -> None:
        """Let the queued batches commit, then refuse new ones."""
        self._closed = True
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer


def _settle(item: _Item, value: Any, error: BaseException | None) -> None:
    if item.future.done():  # the request went away (cancelled); its change is committed all the same
        return
    if error is not None:
        item.future.set_exception(error)
    else:
        item.future.set_result(value)
