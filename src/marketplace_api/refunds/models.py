"""Refunds (per order) and buyers' refund requests.

Refund status (`refunds/state.py` is the only code that changes it) follows Stripe's refund:

```
pending ──► succeeded   (terminal: amounts and the order's status updated, ledger written)
   ├──────► failed      (terminal: Stripe refused to create it, or the refund failed)
   └──────► canceled    (terminal)
```

A refund row is written (and the amount reserved against the order's remainder, under the
order's row lock) before Stripe is called, so two concurrent refunds can never exceed the order.
`vendor_share + fee_share == amount` exactly (split cumulatively with `money.allocate`, so the
shares of all refunds of an order add up to the order's split of their total).
`fee_refunded` is what actually comes back out of the platform fee: `fee_share`, or 0 for a
destination/direct charge refunded with `REFUND_APPLICATION_FEE=false` (the vendor then bears
the whole refund).

Refund request status: open ──► approved (a refund was made) | declined.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base, RetryState, Timestamps, UUIDPrimaryKey


class RefundStatus(enum.StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


class RefundReason(enum.StrEnum):
    requested_by_customer = "requested_by_customer"
    duplicate = "duplicate"
    fraudulent = "fraudulent"


class RefundOrigin(enum.StrEnum):
    vendor = "vendor"
    admin = "admin"
    stripe = "stripe"  # made outside the API (Stripe dashboard), learned from a webhook


class Refund(UUIDPrimaryKey, Timestamps, RetryState, Base):
    __tablename__ = "refunds"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint(
            "vendor_share >= 0 AND fee_share >= 0 AND vendor_share + fee_share = amount",
            name="share_split_exact",
        ),
        sa.CheckConstraint("fee_refunded IN (0, fee_share)", name="fee_refunded_values"),
        sa.Index("ix_refunds_order_status", "order_id", "status"),
        sa.Index("ix_refunds_status_next_attempt", "status", "next_attempt_at"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id", ondelete="RESTRICT"))
    payment_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="RESTRICT"), index=True
    )
    vendor_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("vendors.id", ondelete="RESTRICT"))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    vendor_share: Mapped[int] = mapped_column(sa.BigInteger)
    fee_share: Mapped[int] = mapped_column(sa.BigInteger)
    fee_refunded: Mapped[int] = mapped_column(sa.BigInteger)
    # Destination/direct: sent as `refund_application_fee` (fixed at creation, so a retry sends
    # the same request). None for separate charges.
    refund_application_fee: Mapped[bool | None] = mapped_column()
    reason: Mapped[RefundReason] = mapped_column(
        sa.Enum(RefundReason, name="refund_reason", native_enum=False, length=32)
    )
    note: Mapped[str | None] = mapped_column(sa.String(1000))
    origin: Mapped[RefundOrigin] = mapped_column(
        sa.Enum(RefundOrigin, name="refund_origin", native_enum=False, length=16)
    )
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    refund_request_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("refund_requests.id", ondelete="SET NULL")
    )
    status: Mapped[RefundStatus] = mapped_column(
        sa.Enum(RefundStatus, name="refund_status", native_enum=False, length=16),
        server_default=RefundStatus.pending.value,
    )
    stripe_refund_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(sa.String(255))
    succeeded_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def idempotency_key(self) -> str:
        return f"refund:{self.id}"


class RefundRequestStatus(enum.StrEnum):
    open = "open"
    approved = "approved"
    declined = "declined"


class RefundRequest(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "refund_requests"
    __table_args__ = (
        sa.CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
        # One open request per order; an open request blocks the automatic release.
        sa.Index(
            "uq_refund_requests_open_order",
            "order_id",
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
        ),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="RESTRICT"), index=True
    )
    buyer_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="RESTRICT"))
    reason: Mapped[str] = mapped_column(sa.String(2000))
    amount: Mapped[int | None] = mapped_column(sa.BigInteger)  # None: the whole remainder
    status: Mapped[RefundRequestStatus] = mapped_column(
        sa.Enum(RefundRequestStatus, name="refund_request_status", native_enum=False, length=16),
        server_default=RefundRequestStatus.open.value,
    )
    resolution_note: Mapped[str | None] = mapped_column(sa.String(1000))
    resolved_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
