"""transfers, refunds, disputes and the money-movement ledger

Shipments (fulfilment), refund requests, refunds, transfers (separate charges: one per order,
`UNIQUE(order_id)`), transfer reversals, disputes, and `money_movements`: the append-only record of
every movement of money (UPDATE and DELETE refused by a trigger).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "disputes",
        sa.Column("stripe_dispute_id", sa.String(length=255), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("stripe_charge_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_account_id", sa.String(length=255), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("is_open", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("evidence_due_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("orders_before", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("stripe_synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_disputes_payment_id_payments"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputes")),
        sa.UniqueConstraint("stripe_dispute_id", name=op.f("uq_disputes_stripe_dispute_id")),
    )
    op.create_index(
        "ix_disputes_open_created", "disputes", ["is_open", "created_at", "id"], unique=False
    )
    op.create_index(op.f("ix_disputes_payment_id"), "disputes", ["payment_id"], unique=False)
    op.create_table(
        "money_movements",
        sa.Column(
            "kind",
            sa.Enum(
                "charge",
                "platform_fee",
                "transfer",
                "refund",
                "refund_fee_share",
                "transfer_reversal",
                "dispute_withdrawal",
                "dispute_reinstatement",
                "stripe_fee",
                "payout",
                "payout_failed",
                name="movement_kind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("vendor_id", sa.Uuid(), nullable=True),
        sa.Column("stripe_id", sa.String(length=255), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_money_movements_order_id_orders"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_money_movements_payment_id_payments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendors.id"],
            name=op.f("fk_money_movements_vendor_id_vendors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_money_movements")),
        sa.UniqueConstraint("seq", name=op.f("uq_money_movements_seq")),
        sa.UniqueConstraint(
            "kind",
            "stripe_id",
            "order_id",
            name="uq_money_movements_kind_stripe_id_order_id",
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index("ix_money_movements_occurred", "money_movements", ["occurred_at"], unique=False)
    op.create_index(
        op.f("ix_money_movements_order_id"), "money_movements", ["order_id"], unique=False
    )
    op.create_index(
        "ix_money_movements_payment_occurred",
        "money_movements",
        ["payment_id", "occurred_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_money_movements_vendor_occurred",
        "money_movements",
        ["vendor_id", "occurred_at", "id"],
        unique=False,
    )
    op.create_table(
        "refund_requests",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "approved",
                "declined",
                name="refund_request_status",
                native_enum=False,
                length=16,
            ),
            server_default="open",
            nullable=False,
        ),
        sa.Column("resolution_note", sa.String(length=1000), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
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
            "amount IS NULL OR amount > 0", name=op.f("ck_refund_requests_amount_positive")
        ),
        sa.ForeignKeyConstraint(
            ["buyer_id"],
            ["users.id"],
            name=op.f("fk_refund_requests_buyer_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_refund_requests_order_id_orders"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refund_requests")),
    )
    op.create_index(
        op.f("ix_refund_requests_order_id"), "refund_requests", ["order_id"], unique=False
    )
    op.create_index(
        "uq_refund_requests_open_order",
        "refund_requests",
        ["order_id"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "shipments",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("carrier", sa.String(length=100), nullable=False),
        sa.Column("tracking_number", sa.String(length=100), nullable=False),
        sa.Column("tracking_url", sa.String(length=2000), nullable=True),
        sa.Column("shipped_by_id", sa.Uuid(), nullable=True),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=False),
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
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_shipments_order_id_orders"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["shipped_by_id"],
            ["users.id"],
            name=op.f("fk_shipments_shipped_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
        sa.UniqueConstraint("order_id", name=op.f("uq_shipments_order_id")),
    )
    op.create_table(
        "transfers",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("destination", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "paid",
                "failed",
                "skipped",
                name="transfer_status",
                native_enum=False,
                length=16,
            ),
            server_default="pending",
            nullable=False,
        ),
        sa.Column(
            "trigger",
            sa.Enum("buyer", "admin", "auto", name="release_trigger", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("released_by_id", sa.Uuid(), nullable=True),
        sa.Column("stripe_transfer_id", sa.String(length=255), nullable=True),
        sa.Column("amount_reversed", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("key_generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("transferred_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint("amount >= 0", name=op.f("ck_transfers_amount_non_negative")),
        sa.CheckConstraint(
            "amount_reversed >= 0 AND amount_reversed <= amount",
            name=op.f("ck_transfers_amount_reversed_range"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_transfers_order_id_orders"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_transfers_payment_id_payments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["released_by_id"],
            ["users.id"],
            name=op.f("fk_transfers_released_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendors.id"],
            name=op.f("fk_transfers_vendor_id_vendors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint("order_id", name=op.f("uq_transfers_order_id")),
        sa.UniqueConstraint("stripe_transfer_id", name=op.f("uq_transfers_stripe_transfer_id")),
    )
    op.create_index(op.f("ix_transfers_payment_id"), "transfers", ["payment_id"], unique=False)
    op.create_index(
        "ix_transfers_status_next_attempt", "transfers", ["status", "next_attempt_at"], unique=False
    )
    op.create_index(op.f("ix_transfers_vendor_id"), "transfers", ["vendor_id"], unique=False)
    op.create_table(
        "refunds",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("vendor_share", sa.BigInteger(), nullable=False),
        sa.Column("fee_share", sa.BigInteger(), nullable=False),
        sa.Column("fee_refunded", sa.BigInteger(), nullable=False),
        sa.Column("refund_application_fee", sa.Boolean(), nullable=True),
        sa.Column(
            "reason",
            sa.Enum(
                "requested_by_customer",
                "duplicate",
                "fraudulent",
                name="refund_reason",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column(
            "origin",
            sa.Enum(
                "vendor", "admin", "stripe", name="refund_origin", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("refund_request_id", sa.Uuid(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "succeeded",
                "failed",
                "canceled",
                name="refund_status",
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
        sa.CheckConstraint("amount > 0", name=op.f("ck_refunds_amount_positive")),
        sa.CheckConstraint(
            "fee_refunded IN (0, fee_share)", name=op.f("ck_refunds_fee_refunded_values")
        ),
        sa.CheckConstraint(
            "vendor_share >= 0 AND fee_share >= 0 AND vendor_share + fee_share = amount",
            name=op.f("ck_refunds_share_split_exact"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_refunds_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_refunds_order_id_orders"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_refunds_payment_id_payments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["refund_request_id"],
            ["refund_requests.id"],
            name=op.f("fk_refunds_refund_request_id_refund_requests"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendors.id"],
            name=op.f("fk_refunds_vendor_id_vendors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
        sa.UniqueConstraint("stripe_refund_id", name=op.f("uq_refunds_stripe_refund_id")),
    )
    op.create_index("ix_refunds_order_status", "refunds", ["order_id", "status"], unique=False)
    op.create_index(op.f("ix_refunds_payment_id"), "refunds", ["payment_id"], unique=False)
    op.create_index(
        "ix_refunds_status_next_attempt", "refunds", ["status", "next_attempt_at"], unique=False
    )
    op.create_table(
        "transfer_reversals",
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("refund_id", sa.Uuid(), nullable=True),
        sa.Column("dispute_id", sa.Uuid(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "succeeded",
                "failed",
                "canceled",
                name="reversal_status",
                native_enum=False,
                length=16,
            ),
            server_default="pending",
            nullable=False,
        ),
        sa.Column("stripe_reversal_id", sa.String(length=255), nullable=True),
        sa.Column("key_generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
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
            "(refund_id IS NULL) <> (dispute_id IS NULL)",
            name=op.f("ck_transfer_reversals_one_cause"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_transfer_reversals_amount_positive")),
        sa.ForeignKeyConstraint(
            ["dispute_id"],
            ["disputes.id"],
            name=op.f("fk_transfer_reversals_dispute_id_disputes"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_transfer_reversals_order_id_orders"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"],
            ["refunds.id"],
            name=op.f("fk_transfer_reversals_refund_id_refunds"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"],
            ["transfers.id"],
            name=op.f("fk_transfer_reversals_transfer_id_transfers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_reversals")),
        sa.UniqueConstraint("dispute_id", "order_id", name="uq_transfer_reversals_dispute_order"),
        sa.UniqueConstraint("refund_id", name=op.f("uq_transfer_reversals_refund_id")),
        sa.UniqueConstraint(
            "stripe_reversal_id", name=op.f("uq_transfer_reversals_stripe_reversal_id")
        ),
    )
    op.create_index(
        "ix_transfer_reversals_status_next_attempt",
        "transfer_reversals",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_transfer_reversals_transfer_id"),
        "transfer_reversals",
        ["transfer_id"],
        unique=False,
    )

    # The ledger is append-only: the database itself refuses to change or delete a movement.
    op.execute(
        """
        CREATE FUNCTION money_movements_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'money_movements rows are immutable (% refused)', TG_OP
                USING ERRCODE = 'restrict_violation';
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER money_movements_immutable BEFORE UPDATE OR DELETE ON money_movements"
        " FOR EACH ROW EXECUTE FUNCTION money_movements_immutable()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS money_movements_immutable ON money_movements")
    op.execute("DROP FUNCTION IF EXISTS money_movements_immutable()")
    op.drop_index(op.f("ix_transfer_reversals_transfer_id"), table_name="transfer_reversals")
    op.drop_index("ix_transfer_reversals_status_next_attempt", table_name="transfer_reversals")
    op.drop_table("transfer_reversals")
    op.drop_index("ix_refunds_status_next_attempt", table_name="refunds")
    op.drop_index(op.f("ix_refunds_payment_id"), table_name="refunds")
    op.drop_index("ix_refunds_order_status", table_name="refunds")
    op.drop_table("refunds")
    op.drop_index(op.f("ix_transfers_vendor_id"), table_name="transfers")
    op.drop_index("ix_transfers_status_next_attempt", table_name="transfers")
    op.drop_index(op.f("ix_transfers_payment_id"), table_name="transfers")
    op.drop_table("transfers")
    op.drop_table("shipments")
    op.drop_index(
        "uq_refund_requests_open_order",
        table_name="refund_requests",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_index(op.f("ix_refund_requests_order_id"), table_name="refund_requests")
    op.drop_table("refund_requests")
    op.drop_index("ix_money_movements_vendor_occurred", table_name="money_movements")
    op.drop_index("ix_money_movements_payment_occurred", table_name="money_movements")
    op.drop_index(op.f("ix_money_movements_order_id"), table_name="money_movements")
    op.drop_index("ix_money_movements_occurred", table_name="money_movements")
    op.drop_table("money_movements")
    op.drop_index(op.f("ix_disputes_payment_id"), table_name="disputes")
    op.drop_index("ix_disputes_open_created", table_name="disputes")
    op.drop_table("disputes")
