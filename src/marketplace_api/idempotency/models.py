"""The API's own `Idempotency-Key` records (per user), Stripe's semantics.

A record is created by the first request with a key. While that request runs it is locked
(`locked_at`); its final answer (status and body) is stored and replayed to every later request
with the same key and the same fingerprint. `resource_id` is the recovery point: the row the first
attempt committed (e.g. the payment), so a retry after a transient failure resumes it instead of
starting over.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, SmallInteger, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base, UUIDPrimaryKey


class IdempotencyKey(UUIDPrimaryKey, Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_id_key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_method: Mapped[str] = mapped_column(String(10))
    request_path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))  # sha256 of method, path and body
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resource_id: Mapped[uuid.UUID | None]
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    response_body: Mapped[Any | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
