"""Reads of the refunds tables that release and refunds share (one definition of "open",
"pending", "counted")."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.refunds.models import Refund, RefundRequest, RefundRequestStatus, RefundStatus

# Refunds that count against the order: reserved (pending) or done.
COUNTED_REFUND_STATUSES = (RefundStatus.pending, RefundStatus.succeeded)


async def open_refund_request(session: AsyncSession, order_id: uuid.UUID) -> RefundRequest | None:
    result = await session.execute(
        select(RefundRequest).where(
            RefundRequest.order_id == order_id, RefundRequest.status == RefundRequestStatus.open
        )
    )
    return result.scalar_one_or_none()


async def has_pending_refund(session: AsyncSession, order_id: uuid.UUID) -> bool:
    """Whether a refund of the order is still waiting for Stripe's outcome."""
    pending = await session.scalar(
        select(Refund.id)
        .where(Refund.order_id == order_id, Refund.status == RefundStatus.pending)
        .limit(1)
    )
    return pending is not None


async def refund_totals(session: AsyncSession, order_id: uuid.UUID) -> tuple[int, int]:
    """(amount, vendor share) of the order's refunds that count (pending or succeeded)."""
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(Refund.amount), 0),
                func.coalesce(func.sum(Refund.vendor_share), 0),
            ).where(Refund.order_id == order_id, Refund.status.in_(COUNTED_REFUND_STATUSES))
        )
    ).one()
    return int(row[0]), int(row[1])
