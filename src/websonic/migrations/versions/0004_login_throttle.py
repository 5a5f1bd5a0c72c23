"""login_throttle: failed-login backoff per (username, client address) and per address

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import websonic.core.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", websonic.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", websonic.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("username", "remote_addr", name=op.f("pk_login_throttle")),
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
