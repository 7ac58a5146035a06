"""Buyers' refund requests: one open per order; it holds the order's funds (no automatic
release) until the vendor or an admin refunds (approving it) or declines it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.orders.models import OrderStatus
from marketplace_api.orders.queries import get_buyer_order
from marketplace_api.refunds.exceptions import (
    NothingToRefund,
    RefundRequestClosed,
    RefundRequestExists,
    RefundRequestNotFound,
)
from marketplace_api.refunds.models import RefundRequest, RefundRequestStatus
from marketplace_api.refunds.schemas import RefundRequestCreate

REQUESTABLE_STATUSES = (OrderStatus.paid, OrderStatus.partially_refunded)


async def create_refund_request(
    session: AsyncSession,
    buyer_id: uuid.UUID,
    order_id: uuid.UUID,
    data: RefundRequestCreate,
    *,
    now: datetime,
    idempotency: IdempotencyContext | None = None,
) -> RefundRequest:
    """Open a request. With an API Idempotency-Key the request is bound to the key in its own
    transaction, and a retry of the key answers that request (not 409 `refund_request_exists`)."""
    if idempotency is not None and idempotency.resource_ids:
        bound = (
            await session.execute(
                select(RefundRequest).where(
                    RefundRequest.id.in_(idempotency.resource_ids),
                    RefundRequest.order_id == order_id,
                    RefundRequest.buyer_id == buyer_id,
                )
            )
        ).scalar_one_or_none()
        await session.commit()
        if bound is not None:
            return bound
    order = await get_buyer_order(session, buyer_id, order_id)
    if order.status not in REQUESTABLE_STATUSES:
        raise NothingToRefund(f"The order is {order.status.value}; there is nothing to refund.")
    if data.amount is not None and data.amount > order.amount - order.amount_refunded:
        raise NothingToRefund("The amount is more than what is left to refund on the order.")
    request = RefundRequest(
        id=uuid.uuid4(),
        order_id=order.id,
        buyer_id=buyer_id,
        reason=data.reason,
        amount=data.amount,
    )
    session.add(request)
    if idempotency is not None:
        await idempotency.bind(session, request.id)
    try:
        await session.commit()  # the partial unique index allows one open request per order
    except IntegrityError:
        await session.rollback()
        raise RefundRequestExists() from None
    return request


async def decline_refund_request(
    session: AsyncSession,
    order_id: uuid.UUID,
    request_id: uuid.UUID,
    note: str,
    *,
    now: datetime,
) -> RefundRequest:
    """open → declined (the caller checked the order is the vendor's)."""
    result = await session.execute(
        update(RefundRequest)
        .where(
            RefundRequest.id == request_id,
            RefundRequest.order_id == order_id,
            RefundRequest.status == RefundRequestStatus.open,
        )
        .values(status=RefundRequestStatus.declined, resolved_at=now, resolution_note=note)
        .returning(RefundRequest.id)
        .execution_options(synchronize_session=False)
    )
    moved = result.first() is not None
    await session.commit()
    request = await session.scalar(
        select(RefundRequest)
        .where(RefundRequest.id == request_id, RefundRequest.order_id == order_id)
        .execution_options(populate_existing=True)
    )
    if request is None:
        raise RefundRequestNotFound()
    if not moved:
        raise RefundRequestClosed(
            f"The request is already {request.status.value}.", status=request.status.value
        )
    return request
