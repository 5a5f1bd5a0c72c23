"""deployments: action (deploy or rollback) and duration; releases: the manifest built

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(
            sa.Column("action", sa.String(length=20), nullable=False, server_default="deploy")
        )
        batch.add_column(sa.Column("seconds", sa.Float(), nullable=True))
    op.add_column("releases", sa.Column("manifest", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("releases", "manifest")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("seconds")
        batch.drop_column("action")
