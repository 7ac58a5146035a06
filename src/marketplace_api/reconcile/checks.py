"""`reconcile_checks`: when `reconcile` last compared one of our rows with Stripe.

One row per (kind, our id). `reconcile` picks the rows it has not looked at for the longest
(never-checked first), so a run is bounded by its batch size and yet every row — an active vendor
as much as a stuck refund — is visited again within a few runs. A row is marked checked even when
Stripe's answer was an error, so one broken object cannot starve the others.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, and_, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from marketplace_api.db import Base


class ReconcileCheck(Base):
    __tablename__ = "reconcile_checks"
    __table_args__ = (Index("ix_reconcile_checks_kind_checked_at", "kind", "checked_at"),)

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)  # payment, vendor, refund…
    object_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def last_checked(kind: str, object_id: Any) -> Any:
    """The join condition of a row of `kind` (its id column `object_id`) with its check."""
    return and_(ReconcileCheck.kind == kind, ReconcileCheck.object_id == object_id)


def oldest_checked_first() -> Any:
    """ORDER BY for a query outer-joined with `last_checked`: never-checked rows first."""
    return ReconcileCheck.checked_at.asc().nulls_first()


async def mark_checked(
    session: AsyncSession, kind: str, object_id: uuid.UUID, checked_at: datetime
) -> None:
    """Record a check (not committed). A later check never moves the mark back."""
    statement = insert(ReconcileCheck).values(kind=kind, object_id=object_id, checked_at=checked_at)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ReconcileCheck.kind, ReconcileCheck.object_id],
            set_={
                "checked_at": func.greatest(
                    ReconcileCheck.checked_at, statement.excluded.checked_at
                )
            },
        )
    )
