"""releases carry their database service images

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both SQLite and PostgreSQL (no table rebuild); existing releases
    # get an empty list: they were built without service images.
    op.add_column(
        "releases",
        sa.Column("services", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    op.drop_column("releases", "services")  # SQLite >= 3.35 drops columns in place too
