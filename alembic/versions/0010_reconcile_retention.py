"""reconcile cursor and retention indexes

`reconcile_checks`: when `reconcile` last compared a row of each kind with Stripe (its bounded,
oldest-checked-first round-robin). Indexes for the retention job: processed Stripe events by
age, order events by age.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reconcile_checks",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.Uuid(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "object_id", name=op.f("pk_reconcile_checks")),
    )
    op.create_index(
        "ix_reconcile_checks_kind_checked_at", "reconcile_checks", ["kind", "checked_at"]
    )
    op.create_index(
        "ix_stripe_events_status_processed_at", "stripe_events", ["status", "processed_at"]
    )
    op.create_index("ix_order_events_created_at", "order_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_order_events_created_at", table_name="order_events")
    op.drop_index("ix_stripe_events_status_processed_at", table_name="stripe_events")
    op.drop_index("ix_reconcile_checks_kind_checked_at", table_name="reconcile_checks")
    op.drop_table("reconcile_checks")
