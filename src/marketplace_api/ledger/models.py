"""The money-movement ledger: one immutable row per movement of money, with its Stripe id.

Rows are only ever inserted (`ledger.service.record`, `INSERT … ON CONFLICT DO NOTHING` on
`(kind, stripe_id, order_id)`, so a replayed webhook or a retried job records a movement once).
Migration 0006 adds a trigger that makes the database refuse UPDATE and DELETE on the table.

Signs follow the buyer's money through the marketplace (+ in, - out):

- charge (+): the buyer paid for an order (one row per order; Stripe id = the charge);
- platform_fee (+): the platform's fee of an order;
- transfer (+): the vendor's share reached the vendor. Separate charges: the Transfer made at
  release. Destination: the charge's automatic transfer. Direct: the charge itself, settled on
  the vendor's own account (so every charge type reads the same way);
- refund (-): money back to the buyer; refund_fee_share (-): the part of it taken from the fee;
- transfer_reversal (-): the vendor's share of a refund or of a lost dispute taken back;
- dispute_withdrawal (-) / dispute_reinstatement (+): funds taken for a dispute / given back;
- stripe_fee (-): Stripe's processing fee (a platform cost, outside the invariant);
- payout (-) / payout_failed (+): a connected account's payout to its bank (vendor level).

Invariant per payment (see `ledger.service.payment_balance`):
charge + refund = (transfer + transfer_reversal) + (platform_fee + refund_fee_share) + held.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base, UUIDPrimaryKey


class MovementKind(enum.StrEnum):
    charge = "charge"
    platform_fee = "platform_fee"
    transfer = "transfer"
    refund = "refund"
    refund_fee_share = "refund_fee_share"
    transfer_reversal = "transfer_reversal"
    dispute_withdrawal = "dispute_withdrawal"
    dispute_reinstatement = "dispute_reinstatement"
    stripe_fee = "stripe_fee"
    payout = "payout"
    payout_failed = "payout_failed"


class MoneyMovement(UUIDPrimaryKey, Base):
    __tablename__ = "money_movements"
    __table_args__ = (
        # A movement is recorded once, however often its event or job runs.
        sa.UniqueConstraint(
            "kind",
            "stripe_id",
            "order_id",
            name="uq_money_movements_kind_stripe_id_order_id",
            postgresql_nulls_not_distinct=True,
        ),
        sa.Index("ix_money_movements_payment_occurred", "payment_id", "occurred_at", "id"),
        sa.Index("ix_money_movements_vendor_occurred", "vendor_id", "occurred_at", "id"),
        sa.Index("ix_money_movements_occurred", "occurred_at"),
    )

    kind: Mapped[MovementKind] = mapped_column(
        sa.Enum(MovementKind, name="movement_kind", native_enum=False, length=32)
    )
    amount: Mapped[int] = mapped_column(sa.BigInteger)  # signed, minor units
    currency: Mapped[str] = mapped_column(sa.String(3))
    payment_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="RESTRICT")
    )
    order_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="RESTRICT"), index=True
    )
    vendor_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("vendors.id", ondelete="RESTRICT")
    )
    stripe_id: Mapped[str] = mapped_column(sa.String(255))
    occurred_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Insertion order: ties of `occurred_at` (one transaction) read back in the order written.
    seq: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), unique=True)
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )
