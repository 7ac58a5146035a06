"""Idempotency-Key records bind every resource their request created

`resource_id` (one id) becomes `resource_ids` (an array): a request can create several rows (an
admin refund of a payment makes one refund per order), and each is appended in the transaction
that creates it, so a retry after a crash resumes all of them and creates none twice.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "idempotency_keys",
        sa.Column(
            "resource_ids",
            postgresql.ARRAY(sa.Uuid()),
            server_default=sa.text("'{}'::uuid[]"),
            nullable=False,
        ),
    )
    op.execute(
        "UPDATE idempotency_keys SET resource_ids = ARRAY[resource_id] "
        "WHERE resource_id IS NOT NULL"
    )
    op.drop_column("idempotency_keys", "resource_id")


def downgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("resource_id", sa.Uuid(), nullable=True))
    op.execute("UPDATE idempotency_keys SET resource_id = resource_ids[1]")
    op.drop_column("idempotency_keys", "resource_ids")
