"""Alembic environment: runs on the connection app.storage.migrate hands over (no ini file)."""

from __future__ import annotations

from alembic import context

from app.storage import (
    models_authz,  # noqa: F401  (the authorization-flow tables)
    models_mfa,  # noqa: F401  (registers the MFA tables on Base.metadata)
)
from app.storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through app.storage.migrate.upgrade (portcullis db upgrade)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
