from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.config import ChargeType
from marketplace_api.db import Base, Timestamps, UUIDPrimaryKey


class VendorStatus(enum.StrEnum):
    """Derived from the Stripe account in one place (`vendors.status.derive_status`)."""

    not_started = "not_started"  # no Stripe account yet
    onboarding = "onboarding"  # account created, details not submitted
    restricted = "restricted"  # details submitted, but charges or payouts not enabled
    active = "active"  # charges and payouts enabled
    rejected = "rejected"  # Stripe rejected the account (requirements.disabled_reason rejected.*)
    disabled = "disabled"  # deauthorized from the platform, or disabled by Stripe


class Vendor(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "vendors"
    __table_args__ = (
        sa.CheckConstraint(
            "fee_bps_override IS NULL OR fee_bps_override BETWEEN 0 AND 10000",
            name="fee_bps_override_range",
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="RESTRICT"), unique=True
    )
    display_name: Mapped[str] = mapped_column(sa.String(120))
    description: Mapped[str | None] = mapped_column(sa.String(2000))
    country: Mapped[str] = mapped_column(sa.String(2))  # ISO 3166-1 alpha-2, upper case
    default_currency: Mapped[str] = mapped_column(sa.String(3))  # lower-case ISO 4217
    status: Mapped[VendorStatus] = mapped_column(
        sa.Enum(VendorStatus, name="vendor_status", native_enum=False, length=16),
        server_default=VendorStatus.not_started.value,
        index=True,
    )

    # --- Stripe connected account (Express) ---------------------------------------------------
    stripe_account_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    charges_enabled: Mapped[bool] = mapped_column(server_default=sa.text("false"))
    payouts_enabled: Mapped[bool] = mapped_column(server_default=sa.text("false"))
    details_submitted: Mapped[bool] = mapped_column(server_default=sa.text("false"))
    requirements_currently_due: Mapped[list[str]] = mapped_column(
        JSONB, server_default=sa.text("'[]'::jsonb")
    )
    requirements_past_due: Mapped[list[str]] = mapped_column(
        JSONB, server_default=sa.text("'[]'::jsonb")
    )
    requirements_disabled_reason: Mapped[str | None] = mapped_column(sa.String(255))
    # Capability name -> Stripe status ("active", "inactive", "pending", ...).
    capabilities: Mapped[dict[str, str]] = mapped_column(
        JSONB, server_default=sa.text("'{}'::jsonb")
    )
    payout_schedule: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # `created` of the newest Stripe event applied to the account: an older event never
    # overwrites what a newer one set.
    stripe_account_synced_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    deauthorized_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    # --- platform policy (admin) --------------------------------------------------------------
    fee_bps_override: Mapped[int | None] = mapped_column(sa.SmallInteger)
    charge_type_override: Mapped[ChargeType | None] = mapped_column(
        sa.Enum(ChargeType, name="charge_type", native_enum=False, length=16)
    )
    suspended_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def can_accept_payments(self) -> bool:
        """May take new orders. Keep in sync with `can_accept_payments_clause` (SQL)."""
        return (
            self.stripe_account_id is not None
            and self.charges_enabled
            and self.status is VendorStatus.active
            and self.suspended_at is None
            and self.deauthorized_at is None
        )

    @classmethod
    def can_accept_payments_clause(cls) -> sa.ColumnElement[bool]:
        """`can_accept_payments` as a SQL condition (storefront queries)."""
        return sa.and_(
            cls.stripe_account_id.is_not(None),
            cls.charges_enabled.is_(True),
            cls.status == VendorStatus.active,
            cls.suspended_at.is_(None),
            cls.deauthorized_at.is_(None),
        )
