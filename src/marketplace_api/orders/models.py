"""Orders: one per vendor of a cart, all paid by one `Payment`.

Order status state machine (enforced in `orders/state.py`):

```
pending_payment ──► paid ──► partially_refunded ──► refunded
      │              │  └──────────────┬───────────────┘
      │              └──► disputed ◄───┘   (and back when a dispute is won)
      ├──► cancelled  (buyer cancelled before paying)
      ├──► expired    (reservation ran out)
      └──► failed     (the payment could not be created)
```

Leaving `pending_payment` for cancelled/expired/failed restores the reserved stock, exactly once
(the conditional UPDATE that moves the status is the guard). `fulfilment_status` is separate:
unfulfilled → shipped → delivered.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base, Timestamps, UUIDPrimaryKey


class OrderStatus(enum.StrEnum):
    pending_payment = "pending_payment"
    paid = "paid"
    partially_refunded = "partially_refunded"
    refunded = "refunded"
    disputed = "disputed"
    cancelled = "cancelled"
    expired = "expired"
    failed = "failed"


class FulfilmentStatus(enum.StrEnum):
    unfulfilled = "unfulfilled"
    shipped = "shipped"
    delivered = "delivered"


class Order(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "orders"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint(
            "platform_fee >= 0 AND vendor_amount >= 0 AND vendor_amount + platform_fee = amount",
            name="fee_split_exact",
        ),
        sa.CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount", name="amount_refunded_range"
        ),
        sa.CheckConstraint("fee_bps BETWEEN 0 AND 10000", name="fee_bps_range"),
        sa.Index("ix_orders_buyer_created_id", "buyer_id", "created_at", "id"),
        sa.Index("ix_orders_vendor_created_id", "vendor_id", "created_at", "id"),
    )

    payment_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="RESTRICT"), index=True
    )
    buyer_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="RESTRICT"))
    vendor_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("vendors.id", ondelete="RESTRICT"))
    # The vendor's connected account at checkout: destination of the charge or of the transfer.
    vendor_stripe_account_id: Mapped[str] = mapped_column(sa.String(255))
    status: Mapped[OrderStatus] = mapped_column(
        sa.Enum(OrderStatus, name="order_status", native_enum=False, length=24),
        server_default=OrderStatus.pending_payment.value,
    )
    fulfilment_status: Mapped[FulfilmentStatus] = mapped_column(
        sa.Enum(FulfilmentStatus, name="fulfilment_status", native_enum=False, length=16),
        server_default=FulfilmentStatus.unfulfilled.value,
    )
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[int] = mapped_column(sa.BigInteger)  # what the buyer pays for this order
    platform_fee: Mapped[int] = mapped_column(sa.BigInteger)
    vendor_amount: Mapped[int] = mapped_column(sa.BigInteger)  # what the vendor is owed
    fee_bps: Mapped[int] = mapped_column(sa.SmallInteger)  # the fee rate applied at checkout
    amount_refunded: Mapped[int] = mapped_column(sa.BigInteger, server_default=sa.text("0"))
    reservation_expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    shipping: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    contact: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status_updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.text("now()")
    )
    paid_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    shipped_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class OrderItem(UUIDPrimaryKey, Base):
    __tablename__ = "order_items"
    __table_args__ = (
        sa.CheckConstraint("quantity BETWEEN 1 AND 100", name="quantity_range"),
        sa.CheckConstraint("unit_amount > 0", name="unit_amount_positive"),
        sa.CheckConstraint("amount = unit_amount * quantity", name="amount_is_unit_times_quantity"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    listing_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("listings.id", ondelete="RESTRICT"), index=True
    )
    title: Mapped[str] = mapped_column(sa.String(200))  # snapshot at checkout
    unit_amount: Mapped[int] = mapped_column(sa.BigInteger)
    quantity: Mapped[int] = mapped_column(sa.Integer)
    amount: Mapped[int] = mapped_column(sa.BigInteger)
