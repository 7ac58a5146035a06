"""Payments: one Stripe PaymentIntent paying for one or several orders (one order per vendor).

Status state machine (enforced in `payments/state.py`, the only place that changes `status`):

```
requires_payment ──► requires_action ──► processing ──► succeeded   (terminal)
      ▲   │  ▲            │                  │
      │   │  └────────────┴──── failure ─────┘  (failure_code/message kept; the buyer retries)
      │   ├──► canceled   (terminal: buyer cancelled, or Stripe cancelled the PaymentIntent)
      │   ├──► expired    (terminal: the reservation ran out; PaymentIntent cancelled)
      │   └──► failed     (terminal: Stripe refused to create the PaymentIntent; nothing charged)
```

`requires_payment` is also where a failed attempt goes back to: the PaymentIntent stays usable and
the buyer may try another card. Stock reserved at checkout stays sold on success and is restored
exactly once when the payment ends in canceled, expired or failed.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.config import ChargeType
from marketplace_api.db import Base, RetryState, Timestamps, UUIDPrimaryKey


class PaymentStatus(enum.StrEnum):
    requires_payment = "requires_payment"  # waiting for the buyer (also after a failed attempt)
    requires_action = "requires_action"  # 3-D Secure or a redirect in progress
    processing = "processing"  # money in flight (e.g. bank debits); cannot expire
    succeeded = "succeeded"
    canceled = "canceled"
    expired = "expired"
    failed = "failed"


PAYABLE_STATUSES = frozenset({PaymentStatus.requires_payment, PaymentStatus.requires_action})
TERMINAL_STATUSES = frozenset(
    {
        PaymentStatus.succeeded,
        PaymentStatus.canceled,
        PaymentStatus.expired,
        PaymentStatus.failed,
    }
)


class Payment(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "payments"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint(
            "platform_fee >= 0 AND platform_fee <= amount", name="platform_fee_range"
        ),
        sa.CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount", name="amount_refunded_range"
        ),
        sa.CheckConstraint("stripe_fee IS NULL OR stripe_fee >= 0", name="stripe_fee_non_negative"),
        sa.CheckConstraint(
            "charge_type <> 'direct' OR stripe_account_id IS NOT NULL",
            name="direct_charge_has_account",
        ),
        sa.Index("ix_payments_buyer_created_id", "buyer_id", "created_at", "id"),
        # The expiry job: unpaid payments by reservation expiry.
        sa.Index("ix_payments_status_reservation", "status", "reservation_expires_at"),
    )

    buyer_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="RESTRICT"))
    charge_type: Mapped[ChargeType] = mapped_column(
        sa.Enum(ChargeType, name="charge_type", native_enum=False, length=16)
    )
    status: Mapped[PaymentStatus] = mapped_column(
        sa.Enum(PaymentStatus, name="payment_status", native_enum=False, length=24),
        server_default=PaymentStatus.requires_payment.value,
    )
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[int] = mapped_column(sa.BigInteger)  # minor units, sum of the orders
    platform_fee: Mapped[int] = mapped_column(sa.BigInteger)  # sum of the orders' fees
    amount_refunded: Mapped[int] = mapped_column(sa.BigInteger, server_default=sa.text("0"))
    stripe_fee: Mapped[int | None] = mapped_column(sa.BigInteger)  # from the balance transaction

    # --- Stripe ---------------------------------------------------------------------------
    # The PaymentIntent that counts: the Payment Element's, or the one that actually succeeded.
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    client_secret: Mapped[str | None] = mapped_column(sa.String(255))
    # Direct charges only: the connected account the PaymentIntent lives on (Stripe.js needs it).
    stripe_account_id: Mapped[str | None] = mapped_column(sa.String(255))
    transfer_group: Mapped[str | None] = mapped_column(sa.String(255))  # separate charges
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    stripe_transfer_id: Mapped[str | None] = mapped_column(sa.String(255))  # destination charges
    # Snapshots sent with the PaymentIntent, so a retry sends exactly the same parameters.
    receipt_email: Mapped[str | None] = mapped_column(sa.String(320))
    statement_descriptor_suffix: Mapped[str | None] = mapped_column(sa.String(22))
    failure_code: Mapped[str | None] = mapped_column(sa.String(255))
    failure_message: Mapped[str | None] = mapped_column(sa.Text)

    # --- Stripe Checkout (hosted page alternative) ------------------------------------------
    checkout_session_seq: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    checkout_session_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    checkout_session_url: Mapped[str | None] = mapped_column(sa.Text)
    checkout_session_expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    checkout_payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    # The Payment Element's PaymentIntent once a Checkout Session's became the one that counts:
    # still ours, so a late success of it is a duplicate to refund, not a stranger.
    replaced_payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255))

    # --- timing ---------------------------------------------------------------------------
    reservation_expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    status_updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.text("now()")
    )
    # `created` of the newest Stripe event (or retrieval) applied: older non-terminal updates
    # are ignored.
    stripe_synced_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    succeeded_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class DuplicateRefundStatus(enum.StrEnum):
    pending = "pending"  # to be refunded (or Stripe's refund is on its way)
    succeeded = "succeeded"
    failed = "failed"  # refused or failed at Stripe: the operator was alerted


class DuplicatePaymentRefund(UUIDPrimaryKey, Timestamps, RetryState, Base):
    """A second successful PaymentIntent of one payment (a Checkout Session's and the Payment
    Element's both paid), refunded whole. One row per PaymentIntent (the unique key), so however
    often its success is delivered it is refunded once; the Stripe call carries the key
    `duplicate_payment:<pi_…>:refund`. Not a `Refund`: it is not part of any order's refundable
    amount.

    Status: pending ──► succeeded | failed (`payments/duplicates.py` is the only code changing it).
    """

    __tablename__ = "duplicate_payment_refunds"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("platform_fee >= 0 AND platform_fee <= amount", name="fee_range"),
        sa.Index("ix_duplicate_payment_refunds_status_next_attempt", "status", "next_attempt_at"),
    )

    payment_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="RESTRICT"), index=True
    )
    stripe_payment_intent_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    # The application fee the duplicate collected too (destination and direct charges).
    platform_fee: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[DuplicateRefundStatus] = mapped_column(
        sa.Enum(
            DuplicateRefundStatus, name="duplicate_refund_status", native_enum=False, length=16
        ),
        server_default=DuplicateRefundStatus.pending.value,
    )
    stripe_refund_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(sa.String(255))
    succeeded_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def idempotency_key(self) -> str:
        return f"duplicate_payment:{self.stripe_payment_intent_id}:refund"
