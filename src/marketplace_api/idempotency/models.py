"""The API's own `Idempotency-Key` records (per user), Stripe's semantics.

A record is created by the first request with a key. While that request runs, it holds a
PostgreSQL advisory lock on the key (`locked_at` only records when it started); its final answer
(status and body) is stored and replayed to every later request with the same key and the same
fingerprint. `resource_ids` are the recovery point: every row the request created (the payment of
a checkout, the refunds of an admin refund, ...), each appended in the transaction that created
it, so a retry after a crash resumes them instead of creating others.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base, UUIDPrimaryKey


class IdempotencyKey(UUIDPrimaryKey, Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_id_key"),
        sa.Index("ix_idempotency_keys_created_at", "created_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(255))
    request_method: Mapped[str] = mapped_column(sa.String(10))
    request_path: Mapped[str] = mapped_column(sa.String(500))
    request_hash: Mapped[str] = mapped_column(sa.String(64))  # sha256 of method, path and body
    locked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    resource_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(sa.Uuid()), server_default=sa.text("'{}'::uuid[]")
    )
    response_status: Mapped[int | None] = mapped_column(sa.SmallInteger)
    response_body: Mapped[Any | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
