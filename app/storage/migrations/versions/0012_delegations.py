"""Delegations: a wallet's signed, revocable grants to its trading bots' keys (docs/DELEGATION.md).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.storage.models_delegations  # noqa: F401
from app.storage.models import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delegations",
        sa.Column("delegation_id", sa.String(64), nullable=False),
        sa.Column("message_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("delegate_jkt", sa.String(64), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("authorization_details", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("delegation_id", name="pk_delegations"),
        sa.UniqueConstraint("message_hash", name="uq_delegations_message_hash"),
    )
    op.create_index("ix_delegations_subject", "delegations", ["subject"])
    op.create_index("ix_delegations_delegate_jkt", "delegations", ["delegate_jkt"])
    op.create_index("ix_delegations_expires_at", "delegations", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_delegations_expires_at", "delegations")
    op.drop_index("ix_delegations_delegate_jkt", "delegations")
    op.drop_index("ix_delegations_subject", "delegations")
    op.drop_table("delegations")
