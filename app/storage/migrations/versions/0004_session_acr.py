"""Refresh-token families remember how the session was authenticated (amr, acr).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("amr", sa.String(255), nullable=False, server_default="siwe"))
        batch.add_column(
            sa.Column("acr", sa.String(64), nullable=False, server_default="urn:portcullis:acr:wallet")
        )


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("acr")
        batch.drop_column("amr")
