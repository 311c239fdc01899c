"""Second factors: TOTP and WebAuthn factors, recovery codes, WebAuthn challenges (docs/MFA.md).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Imported for its side effect as well: it puts the MFA tables on Base.metadata, which env.py hands to
# Alembic as target_metadata, so comparing models and schema sees them wherever the migrations load.
import app.storage.models_mfa  # noqa: F401
from app.storage.models import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mfa_factors",
        sa.Column("factor_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.Column("credential_id", sa.String(1400), nullable=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.Column("sign_count", sa.BigInteger(), nullable=True),
        sa.Column("aaguid", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("factor_id", name="pk_mfa_factors"),
    )
    op.create_index("ix_mfa_factors_subject", "mfa_factors", ["subject"])
    op.create_index("ix_mfa_factors_credential_id", "mfa_factors", ["credential_id"], unique=True)
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_mfa_recovery_codes"),
    )
    op.create_index("ix_mfa_recovery_codes_subject", "mfa_recovery_codes", ["subject"])
    op.create_table(
        "mfa_challenges",
        sa.Column("challenge_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("consumed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("challenge_hash", name="pk_mfa_challenges"),
    )
    op.create_index("ix_mfa_challenges_expires_at", "mfa_challenges", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_mfa_challenges_expires_at", "mfa_challenges")
    op.drop_table("mfa_challenges")
    op.drop_index("ix_mfa_recovery_codes_subject", "mfa_recovery_codes")
    op.drop_table("mfa_recovery_codes")
    op.drop_index("ix_mfa_factors_credential_id", "mfa_factors")
    op.drop_index("ix_mfa_factors_subject", "mfa_factors")
    op.drop_table("mfa_factors")
