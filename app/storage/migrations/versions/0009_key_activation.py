"""Signing keys carry the moment they start signing, so a new key is published before it is used.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-12

Keys stored before this revision started signing when they were created: that is their activation time.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.storage.models import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch:
        batch.add_column(sa.Column("activates_at", UTCDateTime(), nullable=True))
    op.execute("UPDATE signing_keys SET activates_at = created_at WHERE activates_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch:
        batch.drop_column("activates_at")
