"""Audit log identity: a random id for the log, signed into every checkpoint from now on.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-12

A checkpoint file that belongs to another log (another database) is then named as such by
``portcullis audit verify`` instead of being taken for a rewritten log. An existing log gets its id here;
its earlier checkpoints carry none and verify as before (docs/AUDIT.md, "Checkpoints").
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("log_id", sa.String(32), nullable=True))
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.add_column(sa.Column("log_id", sa.String(32), nullable=True))
    head = sa.table("audit_head", sa.column("id", sa.BigInteger()), sa.column("log_id", sa.String(32)))
    op.execute(head.update().where(head.c.id == 1).values(log_id=secrets.token_hex(16)))


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoints") as batch:
        batch.drop_column("log_id")
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("log_id")
