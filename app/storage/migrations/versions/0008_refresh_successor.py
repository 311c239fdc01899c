"""Each rotated refresh token names its successor, so that a lost response can be retried.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14

FAPI 2.0 Security Profile 5.3.2.1 (10): the immediate predecessor of a family's current token may be
presented again within a short window while its successor is unused (app.storage.sql, rotate_refresh).
Tokens rotated before this migration have no successor recorded: their reuse revokes the family as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("successor_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("successor_hash")
