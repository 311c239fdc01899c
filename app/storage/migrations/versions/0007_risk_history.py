"""The risk engine's reads of the sign-in history: two partial indexes on the audit log's sign-in entries.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

On PostgreSQL the indexes are built inside the migration's transaction, which holds writes to
``audit_log`` for the build: on a large log, create them beforehand with ``CREATE INDEX CONCURRENTLY``
under the same names and definitions (docs/RISK.md, "History").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each index also requires its leading column, so that neither can serve the other's reads (see models).
SUBJECT_SIGN_INS = sa.text("type IN ('signin.succeeded', 'signin.failed') AND actor IS NOT NULL")
NETWORK_SIGN_INS = sa.text("type IN ('signin.succeeded', 'signin.failed') AND ip IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_audit_log_signin_subject",
        "audit_log",
        ["actor", "type", "ts", "ip"],
        if_not_exists=True,
        sqlite_where=SUBJECT_SIGN_INS,
        postgresql_where=SUBJECT_SIGN_INS,
    )
    op.create_index(
        "ix_audit_log_signin_network",
        "audit_log",
        ["ip", "type", "ts"],
        if_not_exists=True,
        sqlite_where=NETWORK_SIGN_INS,
        postgresql_where=NETWORK_SIGN_INS,
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_signin_network", table_name="audit_log")
    op.drop_index("ix_audit_log_signin_subject", table_name="audit_log")
