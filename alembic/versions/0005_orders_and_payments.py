"""orders and payments

Payments (one PaymentIntent for a cart), orders (one per vendor) with their items, and the API's
own Idempotency-Key records.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 03:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_method", sa.String(length=10), nullable=False),
        sa.Column("request_path", sa.String(length=500), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resource_id", sa.Uuid(), nullable=True),
        sa.Column("response_status", sa.SmallInteger(), nullable=True),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_idempotency_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_id_key"),
    )
    op.create_index(
        "ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"], unique=False
    )
    op.create_table(
        "payments",
        sa.Column("buyer_id", sa.Uuid(), nullable=False),
        sa.Column(
            "charge_type",
            sa.Enum(
                "destination",
                "direct",
                "separate",
                name="charge_type",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "requires_payment",
                "requires_action",
                "processing",
                "succeeded",
                "canceled",
                "expired",
                "failed",
                name="payment_status",
                native_enum=False,
                length=24,
            ),
            server_default="requires_payment",
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("platform_fee", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("stripe_fee", sa.BigInteger(), nullable=True),
        sa.Column("stripe_payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("client_secret", sa.String(length=255), nullable=True),
        sa.Column("stripe_account_id", sa.String(length=255), nullable=True),
        sa.Column("transfer_group", sa.String(length=255), nullable=True),
        sa.Column("stripe_charge_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_transfer_id", sa.String(length=255), nullable=True),
        sa.Column("receipt_email", sa.String(length=320), nullable=True),
        sa.Column("statement_descriptor_suffix", sa.String(length=22), nullable=True),
        sa.Column("failure_code", sa.String(length=255), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=True),
        sa.Column(
            "checkout_session_seq", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_session_url", sa.Text(), nullable=True),
        sa.Column("checkout_session_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checkout_payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("reservation_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status_updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("stripe_synced_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint(
            "charge_type <> 'direct' OR stripe_account_id IS NOT NULL",
            name=op.f("ck_payments_direct_charge_has_account"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payments_amount_positive")),
        sa.CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount",
            name=op.f("ck_payments_amount_refunded_range"),
        ),
        sa.CheckConstraint(
            "platform_fee >= 0 AND platform_fee <= amount",
            name=op.f("ck_payments_platform_fee_range"),
        ),
        sa.CheckConstraint(
            "stripe_fee IS NULL OR stripe_fee >= 0",
            name=op.f("ck_payments_stripe_fee_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["users.id"], name=op.f("fk_payments_buyer_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("checkout_session_id", name=op.f("uq_payments_checkout_session_id")),
        sa.UniqueConstraint(
            "stripe_payment_intent_id", name=op.f("uq_payments_stripe_payment_intent_id")
        ),
    )
    op.create_index(
        "ix_payments_buyer_created_id", "payments", ["buyer_id", "created_at", "id"], unique=False
    )
    op.create_index(
        op.f("ix_payments_checkout_payment_intent_id"),
        "payments",
        ["checkout_payment_intent_id"],
        unique=False,
    )
    op.create_index(
        "ix_payments_status_reservation",
        "payments",
        ["status", "reservation_expires_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_payments_stripe_charge_id"), "payments", ["stripe_charge_id"], unique=False
    )
    op.create_table(
        "orders",
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_stripe_account_id", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending_payment",
                "paid",
                "partially_refunded",
                "refunded",
                "disputed",
                "cancelled",
                "expired",
                "failed",
                name="order_status",
                native_enum=False,
                length=24,
            ),
            server_default="pending_payment",
            nullable=False,
        ),
        sa.Column(
            "fulfilment_status",
            sa.Enum(
                "unfulfilled",
                "shipped",
                "delivered",
                name="fulfilment_status",
                native_enum=False,
                length=16,
            ),
            server_default="unfulfilled",
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("platform_fee", sa.BigInteger(), nullable=False),
        sa.Column("vendor_amount", sa.BigInteger(), nullable=False),
        sa.Column("fee_bps", sa.SmallInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("reservation_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shipping", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("contact", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "status_updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint("amount > 0", name=op.f("ck_orders_amount_positive")),
        sa.CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount",
            name=op.f("ck_orders_amount_refunded_range"),
        ),
        sa.CheckConstraint("fee_bps BETWEEN 0 AND 10000", name=op.f("ck_orders_fee_bps_range")),
        sa.CheckConstraint(
            "platform_fee >= 0 AND vendor_amount >= 0 AND vendor_amount + platform_fee = amount",
            name=op.f("ck_orders_fee_split_exact"),
        ),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["users.id"], name=op.f("fk_orders_buyer_id_users"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_orders_payment_id_payments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendors.id"],
            name=op.f("fk_orders_vendor_id_vendors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    op.create_index(
        "ix_orders_buyer_created_id", "orders", ["buyer_id", "created_at", "id"], unique=False
    )
    op.create_index(op.f("ix_orders_payment_id"), "orders", ["payment_id"], unique=False)
    op.create_index(
        "ix_orders_vendor_created_id", "orders", ["vendor_id", "created_at", "id"], unique=False
    )
    op.create_table(
        "order_items",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("listing_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("unit_amount", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "amount = unit_amount * quantity",
            name=op.f("ck_order_items_amount_is_unit_times_quantity"),
        ),
        sa.CheckConstraint(
            "quantity BETWEEN 1 AND 100", name=op.f("ck_order_items_quantity_range")
        ),
        sa.CheckConstraint("unit_amount > 0", name=op.f("ck_order_items_unit_amount_positive")),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["listings.id"],
            name=op.f("fk_order_items_listing_id_listings"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_order_items_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_items")),
    )
    op.create_index(op.f("ix_order_items_listing_id"), "order_items", ["listing_id"], unique=False)
    op.create_index(op.f("ix_order_items_order_id"), "order_items", ["order_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_order_items_order_id"), table_name="order_items")
    op.drop_index(op.f("ix_order_items_listing_id"), table_name="order_items")
    op.drop_table("order_items")
    op.drop_index("ix_orders_vendor_created_id", table_name="orders")
    op.drop_index(op.f("ix_orders_payment_id"), table_name="orders")
    op.drop_index("ix_orders_buyer_created_id", table_name="orders")
    op.drop_table("orders")
    op.drop_index(op.f("ix_payments_stripe_charge_id"), table_name="payments")
    op.drop_index("ix_payments_status_reservation", table_name="payments")
    op.drop_index(op.f("ix_payments_checkout_payment_intent_id"), table_name="payments")
    op.drop_index("ix_payments_buyer_created_id", table_name="payments")
    op.drop_table("payments")
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
