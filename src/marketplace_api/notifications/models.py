"""The `notifications` table: one row per email we decided to send.

`dedupe_key` = `<source>:<recipient>:<kind>` is unique: the same cause (a Stripe event, an order
reaching a status, a refund row) for the same recipient and kind inserts nothing the second time,
so a replayed webhook or a retried job never sends a second email.

Status: `queued` (a send job is in the queue) → `sent`, or `failed` (the last retry failed), or
`skipped` (email is disabled: `SMTP_URL` unset when the job ran — recorded, never sent later).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base, Timestamps, UUIDPrimaryKey


class NotificationStatus(enum.StrEnum):
    queued = "queued"
    sent = "sent"
    failed = "failed"
    skipped = "skipped"


class Notification(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "notifications"
    __table_args__ = (sa.Index("ix_notifications_status_created_at", "status", "created_at"),)

    dedupe_key: Mapped[str] = mapped_column(sa.String(600), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    recipient: Mapped[str] = mapped_column(sa.String(320))
    # What the templates need, as JSON (amounts in minor units with their currency).
    context: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[NotificationStatus] = mapped_column(
        sa.Enum(NotificationStatus, name="notification_status", native_enum=False, length=16),
        server_default=NotificationStatus.queued.value,
    )
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default=sa.text("0"))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    job_id: Mapped[int | None] = mapped_column(sa.BigInteger)  # procrastinate_jobs.id
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
