"""Disputes (chargebacks), from `charge.dispute.*` webhooks.

`status` is Stripe's dispute status, applied through `disputes/service.py` (never backwards: an
event older than the last one applied changes nothing; a closed dispute stays closed). An open
dispute puts the payment's orders in `disputed` and blocks their release; the orders' statuses
before the dispute are kept in `orders_before` so a won dispute puts them back. A lost dispute
ends the orders `refunded` and, on an already-transferred separate charge, reverses the vendor's
share (`REVERSE_TRANSFER_ON_DISPUTE_LOSS`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base, Timestamps, UUIDPrimaryKey

CLOSED_STATUSES = frozenset({"won", "lost", "prevented", "warning_closed"})


class Dispute(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "disputes"
    __table_args__ = (sa.Index("ix_disputes_open_created", "is_open", "created_at", "id"),)

    stripe_dispute_id: Mapped[str] = mapped_column(sa.String(255), unique=True)
    payment_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="RESTRICT"), index=True
    )
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_account_id: Mapped[str | None] = mapped_column(sa.String(255))  # direct charges
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    reason: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(32))
    is_open: Mapped[bool] = mapped_column(server_default=sa.text("true"))
    evidence_due_by: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # order id -> order status before the dispute.
    orders_before: Mapped[dict[str, str]] = mapped_column(JSONB)
    stripe_synced_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
