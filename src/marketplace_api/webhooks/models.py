from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base, RetryState, Timestamps


class EventStatus(enum.StrEnum):
    pending = "pending"  # stored, not applied yet (or waiting for a retry)
    processed = "processed"
    failed = "failed"  # gave up after the last attempt; an admin may retry
    ignored = "ignored"  # a type we do not handle: stored and acknowledged
    # It named one of our rows but disagreed with what we recorded (another object id, amount,
    # currency or connected account): nothing was changed and the operator was alerted.
    mismatched = "mismatched"


class StripeEvent(Timestamps, RetryState, Base):
    """Every verified Stripe event, raw. The event id is the primary key: a duplicate delivery,
    on any replica, inserts nothing (`INSERT … ON CONFLICT DO NOTHING`)."""

    __tablename__ = "stripe_events"
    __table_args__ = (
        sa.Index("ix_stripe_events_status_next_attempt", "status", "next_attempt_at"),
        sa.Index("ix_stripe_events_type_created", "type", "created"),
        # The retention job: processed (or ignored) events by age.
        sa.Index("ix_stripe_events_status_processed_at", "status", "processed_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)  # evt_…
    type: Mapped[str] = mapped_column(sa.String(100))
    account: Mapped[str | None] = mapped_column(sa.String(255))  # Connect events: acct_…
    livemode: Mapped[bool]
    api_version: Mapped[str | None] = mapped_column(sa.String(50))
    created: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))  # Stripe's event time
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[EventStatus] = mapped_column(
        sa.Enum(EventStatus, name="stripe_event_status", native_enum=False, length=16),
        server_default=EventStatus.pending.value,
    )
    processed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
