"""webhook binding: the PaymentIntent a Checkout Session's replaced; duplicate payment refunds

`payments.replaced_payment_intent_id` keeps the Payment Element's PaymentIntent once a Checkout
Session's became the one that counts, so a late success of it is recognised as ours (a duplicate
to refund) rather than an unknown object. `stripe_events.status` gains `mismatched` (a
non-native enum: no DDL). `duplicate_payment_refunds`: one row per second successful
PaymentIntent of a payment, refunded whole and once.

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
    op.create_table(
        "duplicate_payment_refunds",
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("stripe_payment_intent_id", sa.String(length=255), nullable=False),
        sa.Column("stripe_charge_id", sa.String(length=255), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("platform_fee", sa.BigInteger(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "succeeded",
                "failed",
                name="duplicate_refund_status",
                native_enum=False,
                length=16,
            ),
            server_default="pending",
            nullable=False,
        ),
        sa.Column("stripe_refund_id", sa.String(length=255), nullable=True),
        sa.Column("failure_reason", sa.String(length=255), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_duplicate_payment_refunds_amount_positive")),
        sa.CheckConstraint(
            "platform_fee >= 0 AND platform_fee <= amount",
            name=op.f("ck_duplicate_payment_refunds_fee_range"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_duplicate_payment_refunds_payment_id_payments"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duplicate_payment_refunds")),
        sa.UniqueConstraint(
            "stripe_payment_intent_id",
            name=op.f("uq_duplicate_payment_refunds_stripe_payment_intent_id"),
        ),
        sa.UniqueConstraint(
            "stripe_refund_id", name=op.f("uq_duplicate_payment_refunds_stripe_refund_id")
        ),
    )
    op.create_index(
        op.f("ix_duplicate_payment_refunds_payment_id"),
        "duplicate_payment_refunds",
        ["payment_id"],
        unique=False,
    )
    op.create_index(
        "ix_duplicate_payment_refunds_status_next_attempt",
        "duplicate_payment_refunds",
        ["status", "next_attempt_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_duplicate_payment_refunds_status_next_attempt", table_name="duplicate_payment_refunds"
    )
    op.drop_index(
        op.f("ix_duplicate_payment_refunds_payment_id"), table_name="duplicate_payment_refunds"
    )
    op.drop_table("duplicate_payment_refunds")
    op.drop_column("payments", "replaced_payment_intent_id")
