"""Chain events: the key of the one-entry rule for ``chain.change`` audit entries.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

Every replica's log follower sees the same on-chain events; the first to insert an event's row (chain id,
transaction hash, log index, wallet, event name) writes its audit entry in the same transaction, the others
write none (docs/AUDIT.md, "chain.change").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chain_events",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("log_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account", sa.String(42), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(66), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "tx_hash", "log_index", "account", "event"),
    )


def downgrade() -> None:
    op.drop_table("chain_events")
