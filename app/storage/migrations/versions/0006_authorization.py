"""The authorization-code flow, dynamic client registration and shared single-use JWT ids.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Imported for its side effect: it puts these tables on Base.metadata (see 0003).
import app.storage.models_authz  # noqa: F401
from app.storage.models import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "authorization_requests",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("pushed", sa.Boolean(), nullable=False),
        sa.Column("request_uri_hash", sa.String(64), nullable=True),
        sa.Column("interaction_hash", sa.String(64), nullable=True),
        sa.Column("browser_hash", sa.String(64), nullable=True),
        sa.Column("siwe_nonce_hash", sa.String(64), nullable=True),
        sa.Column("grant", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("authenticated_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name="pk_authorization_requests"),
        sa.UniqueConstraint("request_uri_hash", name="uq_authorization_requests_request_uri_hash"),
        sa.UniqueConstraint("interaction_hash", name="uq_authorization_requests_interaction_hash"),
    )
    op.create_index("ix_authorization_requests_expires_at", "authorization_requests", ["expires_at"])
    op.create_table(
        "authorization_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("dpop_jkt", sa.String(64), nullable=True),
        sa.Column("oidc_nonce", sa.String(255), nullable=True),
        sa.Column("grant", sa.Text(), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("redeemed_at", UTCDateTime(), nullable=True),
        sa.Column("family_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_authorization_codes"),
    )
    op.create_index("ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"])
    op.create_table(
        "registered_clients",
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("registration_token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("client_id", name="pk_registered_clients"),
    )
    op.create_table(
        "used_jtis",
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name="pk_used_jtis"),
    )
    op.create_index("ix_used_jtis_expires_at", "used_jtis", ["expires_at"])
    with op.batch_alter_table("refresh_tokens") as batch:
        # RFC 9449 section 5: a public client's refresh tokens are bound to the DPoP key they were issued to.
        batch.add_column(sa.Column("dpop_jkt", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("dpop_jkt")
    op.drop_index("ix_used_jtis_expires_at", "used_jtis")
    op.drop_table("used_jtis")
    op.drop_table("registered_clients")
    op.drop_index("ix_authorization_codes_expires_at", "authorization_codes")
    op.drop_table("authorization_codes")
    op.drop_index("ix_authorization_requests_expires_at", "authorization_requests")
    op.drop_table("authorization_requests")
