"""`order_events`: the history of an order's visible state, written only by database triggers.

A row is a snapshot after a change: the order's status and fulfilment status and its payment's
status and failure code (a failed attempt leaves the payment payable, with the decline code).
`id` (a sequence) is the SSE event id: a client reconnecting with `Last-Event-ID: <id>` gets every
row of its order with a greater id.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base

NOTIFY_CHANNEL = "order_events"


class OrderEvent(Base):
    __tablename__ = "order_events"
    __table_args__ = (
        sa.Index("ix_order_events_order_id_id", "order_id", "id"),
        sa.Index("ix_order_events_created_at", "created_at"),  # the retention job
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=False), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("orders.id", ondelete="CASCADE"))
    payment_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("payments.id", ondelete="CASCADE"))
    # What changed: "order" (status or fulfilment status) or "payment" (the payment's status).
    kind: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(24))
    fulfilment_status: Mapped[str] = mapped_column(sa.String(16))
    payment_status: Mapped[str] = mapped_column(sa.String(24))
    # Why the last payment attempt failed (e.g. `card_declined`), while the buyer may retry.
    payment_failure_code: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
