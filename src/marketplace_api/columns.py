"""Column groups that several tables share, as declarative mixins (beside `db.Timestamps`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, Text, text
from sqlalchemy.orm import Mapped, mapped_column


class RetryState:
    """A row whose work a background job retries (a Stripe call, an event's processing): how
    many attempts were made, the last one's error, and when the job is due to try again — also
    a lease while an attempt is in flight."""

    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
