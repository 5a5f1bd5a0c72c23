"""api_tokens: the one site a token is for, and the token a rotated one replaces

Install tokens (and one-time install codes) name their site; a token made to rotate another
out records it in ``replaces`` and revokes it on its own first use.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# The updaters' tokens `websonic deploy` made ("updater of CUSTOMER/SITE on CUSTOMER/HOST") are
# bound to their site, so that servers keep updating; other install tokens stay customer-wide,
# which the installer endpoints now refuse (the agency makes a new install code).
BIND_UPDATER_TOKENS = """
UPDATE api_tokens SET site_id = (
    SELECT s.id FROM sites s JOIN customers c ON c.id = s.customer_id
    WHERE c.id = api_tokens.customer_id
      AND api_tokens.description LIKE 'updater of ' || c.slug || '/' || s.slug || ' on %'
)
WHERE scope = 'install' AND description LIKE 'updater of %'
"""


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("site_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("replaces", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            op.f("fk_api_tokens_site_id_sites"), "sites", ["site_id"], ["id"], ondelete="CASCADE"
        )
    op.execute(BIND_UPDATER_TOKENS)


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("fk_api_tokens_site_id_sites"), type_="foreignkey")
        batch.drop_column("replaces")
        batch.drop_column("site_id")
