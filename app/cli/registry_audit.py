"""The ``operator.registry_write`` entries of ``portcullis registry`` writes (docs/AUDIT.md).

Every write the CLI sends (grant, revoke, freeze, unfreeze, deploy, roles grant|revoke, pause, unpause) is
appended to Portcullis' audit log with who ran it (the signer, the OS user or ``--operator LABEL``), the
command without secrets, the chain id and the transaction hashes. The append is the server's own
(``SqlStore.record`` -> app/storage/sql_audit.append): it takes the ``audit_head`` row lock inside its
transaction, so a CLI appending beside a running server queues behind the server's appends (PostgreSQL row
lock, SQLite write lock with busy_timeout) and the chain stays gapless.

``OperatorLog.open`` is called before anything is sent: a database that cannot be written stops the command
with nothing sent. If the database fails after the chain write, ``AuditWriteError`` says so in one line
with the transaction hashes (exit code 1): the write happened and must be recorded by hand.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.audit import events
from app.audit.chain import entry_hash
from app.cli.failures import EXIT_ENVIRONMENT, CliError, database_errors
from app.cli.registry_chain import RegistryCliError
from app.clock import SystemClock
from app.settings import Settings


class AuditUnavailableError(RegistryCliError):
    """The audit log cannot be written before the command sends anything: nothing was sent (exit 1)."""

    exit_code = EXIT_ENVIRONMENT


class AuditWriteError(RegistryCliError):
    """The chain write happened but its operator entry could not be appended (exit 1)."""

    exit_code = EXIT_ENVIRONMENT


def os_user() -> str:
    """The operating-system user running the command ("unknown" when the system cannot say)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class Operator:
    """Who runs a write: ``label`` (``--operator``) if given, else the OS user; the signer's address."""

    name: str
    os_user: str
    signer: str

    @classmethod
    def of(cls, label: str | None, signer: str) -> Operator:
        user = os_user()
        return cls(label or user, user, signer)


def entry_data(
    operator: Operator,
    command: str,
    argv: Sequence[str],
    chain_id: int,
    registry: str,
    transactions: Sequence[str],
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """The entry's ``data``. Pure. ``argv`` is the command as shown (no keys, subject and evidence hashed)."""
    return {
        "command": command,
        "argv": list(argv),
        "signer": operator.signer,
        "operator": operator.name,
        "os_user": operator.os_user,
        "chain_id": chain_id,
        "registry": registry,
        "transactions": list(transactions),
        **details,
    }


class OperatorLog:
    """The audit log the CLI appends to (PORTCULLIS_DATABASE_URL), opened once per command."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def check(self) -> None:
        """Bring the database to the current schema (as `serve` does) and read the log's head: before any
        transaction is sent, so that a write which cannot be recorded is not made."""
        from app.bootstrap import migrate_database

        async def run() -> None:
            await migrate_database(self.settings)
            await self._with_store(lambda store: store.head())

        try:
            with database_errors(self.settings.database_url):
                asyncio.run(run())
        except CliError as exc:
            raise AuditUnavailableError(f"the audit log cannot be written, nothing sent: {exc}") from exc

    def record(self, operator: Operator, data: dict[str, Any], outcome: str, reason: str) -> int:
        """Append one entry; its sequence number. Raises AuditWriteError naming the transactions."""
        from app.bootstrap import server_secret

        try:
            with database_errors(self.settings.database_url):
                auditor = events.Auditor(self.settings, SystemClock(), server_secret(self.settings))
                entry = auditor.event(
                    events.OPERATOR_REGISTRY_WRITE,
                    outcome,
                    events.RequestMeta(operator=operator.name),
                    reason=reason,
                    data=data,
                )
                seq: int = asyncio.run(self._with_store(lambda store: store.record(entry)))
        except CliError as exc:
            sent = ", ".join(data["transactions"]) or "none"
            raise AuditWriteError(
                f"the chain write went through (tx {sent}) but its audit entry could not be written: {exc}; "
                "record the transaction hash by hand"
            ) from exc
        return seq

    async def _with_store(self, fn: Any) -> Any:
        from app.bootstrap import database_timeouts
        from app.storage.db import create_engine
        from app.storage.sql import SqlStore

        engine = create_engine(self.settings.database_url, database_timeouts(self.settings))
        try:
            return await fn(SqlStore(engine, hasher=entry_hash))
        finally:
            await engine.dispose()
