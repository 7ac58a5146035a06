"""Transfers (separate charges & transfers: the held vendor share, released once) and reversals.

Transfer status (`transfers/state.py` is the only code that changes it):

```
pending ──► paid       (Stripe created the transfer; terminal, reversals are separate rows)
   │  └───► skipped    (nothing left to transfer: the order was refunded; terminal)
   └──► failed ──► paid (Stripe refused, e.g. transfers capability inactive; retried by a job)
          ▲  │
          └──┘
```

`UNIQUE(order_id)` is the database's guarantee that an order's vendor share is transferred once.

Reversal status: pending ──► succeeded | canceled; pending ──► failed ──► succeeded (retried).
One per refund (`UNIQUE(refund_id)`), one per lost dispute and order (`UNIQUE(dispute_id,
order_id)`).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base, RetryState, Timestamps, UUIDPrimaryKey


class TransferStatus(enum.StrEnum):
    pending = "pending"
    paid = "paid"
    failed = "failed"
    skipped = "skipped"


class ReleaseTrigger(enum.StrEnum):
    buyer = "buyer"  # the buyer confirmed delivery
    admin = "admin"
    auto = "auto"  # AUTO_RELEASE_DAYS after shipping


class Transfer(UUIDPrimaryKey, Timestamps, RetryState, Base):
    __tablename__ = "transfers"
    __table_args__ = (
        sa.CheckConstraint("amount >= 0", name="amount_non_negative"),
        sa.CheckConstraint(
            "amount_reversed >= 0 AND amount_reversed <= amount", name="amount_reversed_range"
        ),
        sa.Index("ix_transfers_status_next_attempt", "status", "next_attempt_at"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="RESTRICT"), unique=True
    )
    payment_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="RESTRICT"), index=True
    )
    vendor_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("vendors.id", ondelete="RESTRICT"), index=True
    )
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    destination: Mapped[str] = mapped_column(sa.String(255))
    status: Mapped[TransferStatus] = mapped_column(
        sa.Enum(TransferStatus, name="transfer_status", native_enum=False, length=16),
        server_default=TransferStatus.pending.value,
    )
    trigger: Mapped[ReleaseTrigger] = mapped_column(
        sa.Enum(ReleaseTrigger, name="release_trigger", native_enum=False, length=16)
    )
    released_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    stripe_transfer_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    amount_reversed: Mapped[int] = mapped_column(sa.BigInteger, server_default=sa.text("0"))
    # Idempotency key generation: bumped after a definitive refusal (a 4xx: nothing was created),
    # so a retry is a new request; never bumped after a timeout or 5xx (it may have been created).
    key_generation: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    transferred_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def idempotency_key(self) -> str:
        base = f"transfer:{self.id}"
        return base if self.key_generation == 0 else f"{base}:{self.key_generation}"


class ReversalStatus(enum.StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"  # refused by Stripe (e.g. the vendor's balance is short); retried
    canceled = "canceled"  # not needed any more (its refund failed; policy says no)


class TransferReversal(UUIDPrimaryKey, Timestamps, RetryState, Base):
    __tablename__ = "transfer_reversals"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint("(refund_id IS NULL) <> (dispute_id IS NULL)", name="one_cause"),
        sa.UniqueConstraint("dispute_id", "order_id", name="uq_transfer_reversals_dispute_order"),
        sa.Index("ix_transfer_reversals_status_next_attempt", "status", "next_attempt_at"),
    )

    transfer_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("transfers.id", ondelete="RESTRICT"), index=True
    )
    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id", ondelete="RESTRICT"))
    refund_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("refunds.id", ondelete="RESTRICT"), unique=True
    )
    dispute_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("disputes.id", ondelete="RESTRICT")
    )
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[ReversalStatus] = mapped_column(
        sa.Enum(ReversalStatus, name="reversal_status", native_enum=False, length=16),
        server_default=ReversalStatus.pending.value,
    )
    stripe_reversal_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    key_generation: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))

    @property
    def idempotency_key(self) -> str:
        if self.refund_id is not None:
            base = f"refund:{self.refund_id}:reversal"
        else:
            base = f"dispute:{self.dispute_id}:reversal:{self.order_id}"
        return base if self.key_generation == 0 else f"{base}:{self.key_generation}"
