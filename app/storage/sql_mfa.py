"""SQL implementation of app.mfa's FactorStore and ChallengeStore, for SQLite and PostgreSQL alike.

Each single-use step is one conditional UPDATE ... RETURNING inside one transaction, followed by its audit
append: a TOTP step, a WebAuthn counter value, a recovery code and a challenge are each accepted once, and
of concurrent attempts exactly one wins (PostgreSQL re-checks the WHERE clause after the row lock; SQLite
has one writer at a time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.storage.models_mfa import ChallengeRecord, FactorRecord, MfaChallenge, MfaFactor, MfaRecoveryCode
from app.storage.records import AuditRecord
from app.storage.sql_audit import append
from app.storage.writes import AuditedSqlStore

_FACTOR_COLUMNS = (
    MfaFactor.factor_id,
    MfaFactor.kind,
    MfaFactor.label,
    MfaFactor.created_at,
    MfaFactor.confirmed_at,
    MfaFactor.last_used_at,
    MfaFactor.secret_encrypted,
    MfaFactor.last_step,
    MfaFactor.credential_id,
    MfaFactor.public_key,
    MfaFactor.sign_count,
    MfaFactor.aaguid,
)


class _NothingToDo(Exception):
    """Raised inside a write transaction to roll it back (its audit entry included)."""


class SqlFactorStore(AuditedSqlStore):
    """Implements app.mfa.store.MfaStore (FactorStore and ChallengeStore) on one async engine.

    ``hasher`` computes an audit entry's hash (app.audit.chain.entry_hash), handed in so that storage
    depends on nothing above it.
    """

    # -- factors --------------------------------------------------------------------------------------------

    async def factors(self, subject: str) -> list[FactorRecord]:
        query = (
            select(*_FACTOR_COLUMNS)
            .where(MfaFactor.subject == subject)
            .order_by(MfaFactor.created_at, MfaFactor.factor_id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_factor_record(r) for r in rows]

    async def add_factor(self, subject: str, factor: FactorRecord, audit: AuditRecord) -> bool:
        try:
            async with self._write() as conn:
                await conn.execute(insert(MfaFactor).values(subject=subject, **_factor_values(factor)))
                await append(conn, audit, self.hasher)
        except IntegrityError:  # the credential id (or, vanishingly unlikely, the factor id) exists
            return False
        return True

    async def update_after_use(
        self,
        factor_id: str,
        *,
        now: datetime,
        audit: AuditRecord,
        last_step: int | None = None,
        sign_count: int | None = None,
    ) -> bool:
        if (last_step is None) == (sign_count is None):
            raise ValueError("give exactly one of last_step and sign_count")
        values: dict[str, Any] = {
            "last_used_at": now,
            "confirmed_at": func.coalesce(MfaFactor.confirmed_at, now),
        }
        if last_step is not None:
            values["last_step"] = last_step
            grows = or_(MfaFactor.last_step.is_(None), MfaFactor.last_step < last_step)
        else:
            assert sign_count is not None
            values["sign_count"] = sign_count
            stored = func.coalesce(MfaFactor.sign_count, 0)
            # WebAuthn L2 section 6.1.1: a counter must grow, unless the authenticator keeps none (0 and 0).
            grows = stored < sign_count if sign_count > 0 else stored == 0
        statement = (
            update(MfaFactor)
            .where(MfaFactor.factor_id == factor_id, grows)
            .values(**values)
            .returning(MfaFactor.factor_id)
        )
        async with self._write() as conn:
            if (await conn.execute(statement)).first() is None:
                return False
            await append(conn, audit, self.hasher)
        return True

    async def remove_factor(self, subject: str, factor_id: str, audit: AuditRecord) -> bool:
        try:
            async with self._write() as conn:
                # The append comes first: it locks the audit head row, so removals (and every other
                # audited write) run one after another, and the "any confirmed factor left?" count below
                # sees every earlier removal. Two concurrent removals of a subject's last two factors
                # cannot both leave the recovery codes behind.
                await append(conn, audit, self.hasher)
                gone = await conn.execute(
                    delete(MfaFactor)
                    .where(MfaFactor.subject == subject, MfaFactor.factor_id == factor_id)
                    .returning(MfaFactor.factor_id)
                )
                if gone.first() is None:
                    raise _NothingToDo
                left = (
                    await conn.execute(
                        select(func.count())
                        .select_from(MfaFactor)
                        .where(MfaFactor.subject == subject, MfaFactor.confirmed_at.is_not(None))
                    )
                ).scalar_one()
                if left == 0:
                    await conn.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.subject == subject))
        except _NothingToDo:
            return False
        return True

    # -- recovery codes -------------------------------------------------------------------------------------

    async def replace_recovery_codes(
        self, subject: str, code_hashes: Sequence[str], now: datetime, audit: AuditRecord
    ) -> None:
        async with self._write() as conn:
            await conn.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.subject == subject))
            if code_hashes:
                await conn.execute(
                    insert(MfaRecoveryCode),
                    [{"code_hash": h, "subject": subject, "created_at": now} for h in code_hashes],
                )
            await append(conn, audit, self.hasher)

    async def use_recovery_code(
        self, subject: str, code_hash: str, now: datetime, audit: AuditRecord
    ) -> bool:
        statement = (
            update(MfaRecoveryCode)
            .where(
                MfaRecoveryCode.code_hash == code_hash,
                MfaRecoveryCode.subject == subject,
                MfaRecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
            .returning(MfaRecoveryCode.code_hash)
        )
        async with self._write() as conn:
            if (await conn.execute(statement)).first() is None:
                return False
            await append(conn, audit, self.hasher)
        return True

    async def record_failure(self, audit: AuditRecord) -> None:
        async with self._write() as conn:
            await append(conn, audit, self.hasher)

    # -- WebAuthn challenges --------------------------------------------------------------------------------

    async def put_challenge(self, challenge: ChallengeRecord, audit: AuditRecord | None = None) -> None:
        async with self._write() as conn:
            await conn.execute(
                insert(MfaChallenge).values(
                    challenge_hash=challenge.challenge_hash,
                    subject=challenge.subject,
                    purpose=challenge.purpose,
                    issued_at=challenge.issued_at,
                    expires_at=challenge.expires_at,
                )
            )
            if audit is not None:
                await append(conn, audit, self.hasher)

    async def consume_challenge(self, challenge_hash: str, subject: str, purpose: str, now: datetime) -> bool:
        statement = (
            update(MfaChallenge)
            .where(
                MfaChallenge.challenge_hash == challenge_hash,
                MfaChallenge.subject == subject,
                MfaChallenge.purpose == purpose,
                MfaChallenge.consumed_at.is_(None),
                MfaChallenge.expires_at > now,
            )
            .values(consumed_at=now)
            .returning(MfaChallenge.challenge_hash)
        )
        async with self._write() as conn:
            return (await conn.execute(statement)).first() is not None

    async def purge_stale(self, now: datetime, pending_before: datetime) -> int:
        async with self._write() as conn:
            challenges = await conn.execute(delete(MfaChallenge).where(MfaChallenge.expires_at <= now))
            pending = await conn.execute(
                delete(MfaFactor).where(
                    MfaFactor.confirmed_at.is_(None), MfaFactor.created_at <= pending_before
                )
            )
            return int(challenges.rowcount) + int(pending.rowcount)  # type: ignore[attr-defined]


def _factor_record(row: Row[*tuple[Any, ...]]) -> FactorRecord:
    return FactorRecord(
        factor_id=row.factor_id,
        kind=row.kind,
        label=row.label,
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        last_used_at=row.last_used_at,
        secret_encrypted=row.secret_encrypted,
        last_step=None if row.last_step is None else int(row.last_step),
        credential_id=row.credential_id,
        public_key=row.public_key,
        sign_count=None if row.sign_count is None else int(row.sign_count),
        aaguid=row.aaguid,
    )


def _factor_values(factor: FactorRecord) -> dict[str, object]:
    return {
        "factor_id": factor.factor_id,
        "kind": factor.kind,
        "label": factor.label,
        "created_at": factor.created_at,
        "confirmed_at": factor.confirmed_at,
        "last_used_at": factor.last_used_at,
        "secret_encrypted": factor.secret_encrypted,
        "last_step": factor.last_step,
        "credential_id": factor.credential_id,
        "public_key": factor.public_key,
        "sign_count": factor.sign_count,
        "aaguid": factor.aaguid,
    }
