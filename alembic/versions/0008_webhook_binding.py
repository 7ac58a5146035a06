"""webhook binding: the PaymentIntent a Checkout Session's replaced

`payments.replaced_payment_intent_id` keeps the Payment Element's PaymentIntent once a Checkout
Session's became the one that counts, so a late success of it is recognised as ours (a duplicate
to refund) rather than an unknown object. `stripe_events.status` gains `mismatched` (a
non-native enum: no DDL).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "payments",
        sa.Column("replaced_payment_intent_id", sa.String(length=255), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("payments", "replaced_payment_intent_id")
