"""vendors and listings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:15:17.129339
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vendors",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("display_name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("default_currency", sa.String(length=3), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "not_started",
                "onboarding",
                "restricted",
                "active",
                "rejected",
                "disabled",
                name="vendor_status",
                native_enum=False,
                length=16,
            ),
            server_default="not_started",
            nullable=False,
        ),
        sa.Column("stripe_account_id", sa.String(length=255), nullable=True),
        sa.Column("charges_enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("payouts_enabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "details_submitted", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "requirements_currently_due",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "requirements_past_due",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("requirements_disabled_reason", sa.String(length=255), nullable=True),
        sa.Column(
            "capabilities",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("payout_schedule", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("stripe_account_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deauthorized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fee_bps_override", sa.SmallInteger(), nullable=True),
        sa.Column(
            "charge_type_override",
            sa.Enum(
                "destination",
                "direct",
                "separate",
                name="charge_type",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
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
            "fee_bps_override IS NULL OR fee_bps_override BETWEEN 0 AND 10000",
            name=op.f("ck_vendors_fee_bps_override_range"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_vendors_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendors")),
        sa.UniqueConstraint("stripe_account_id", name=op.f("uq_vendors_stripe_account_id")),
        sa.UniqueConstraint("user_id", name=op.f("uq_vendors_user_id")),
    )
    op.create_index(op.f("ix_vendors_status"), "vendors", ["status"], unique=False)
    op.create_table(
        "listings",
        sa.Column("vendor_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=5000), nullable=True),
        sa.Column("price_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("stock_quantity", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft", "active", "archived", name="listing_status", native_enum=False, length=16
            ),
            server_default="draft",
            nullable=False,
        ),
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
        sa.CheckConstraint("price_amount > 0", name=op.f("ck_listings_price_amount_positive")),
        sa.CheckConstraint(
            "stock_quantity >= 0", name=op.f("ck_listings_stock_quantity_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"],
            ["vendors.id"],
            name=op.f("fk_listings_vendor_id_vendors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listings")),
    )
    op.create_index(
        "ix_listings_status_created_id", "listings", ["status", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_listings_vendor_created_id", "listings", ["vendor_id", "created_at", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_listings_vendor_created_id", table_name="listings")
    op.drop_index("ix_listings_status_created_id", table_name="listings")
    op.drop_table("listings")
    op.drop_index(op.f("ix_vendors_status"), table_name="vendors")
    op.drop_table("vendors")
