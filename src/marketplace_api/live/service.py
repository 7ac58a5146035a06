"""Who may watch an order, and what the stream reads: the current state and the events after an
id. Another user's order is `OrderNotFound` (404), checked before any stream starts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import User
from marketplace_api.live.models import OrderEvent
from marketplace_api.orders.exceptions import OrderNotFound
from marketplace_api.orders.models import Order
from marketplace_api.payments.models import Payment
from marketplace_api.vendors.models import Vendor


@dataclass(frozen=True, slots=True)
class OrderState:
    """What one SSE event carries: the order's visible state after a change."""

    event_id: int
    order_id: uuid.UUID
    status: str
    fulfilment_status: str
    payment_status: str
    payment_failure_code: str | None
    at: datetime

    @classmethod
    def from_event(cls, event: OrderEvent) -> OrderState:
        return cls(
            event_id=event.id,
            order_id=event.order_id,
            status=event.status,
            fulfilment_status=event.fulfilment_status,
            payment_status=event.payment_status,
            payment_failure_code=event.payment_failure_code,
            at=event.created_at,
        )


async def check_buyer_order(session: AsyncSession, buyer: User, order_id: uuid.UUID) -> None:
    owned = await session.scalar(
        select(Order.id).where(Order.id == order_id, Order.buyer_id == buyer.id)
    )
    if owned is None:
        raise OrderNotFound()


async def check_vendor_order(session: AsyncSession, vendor_user: User, order_id: uuid.UUID) -> None:
    owned = await session.scalar(
        select(Order.id)
        .join(Vendor, Vendor.id == Order.vendor_id)
        .where(Order.id == order_id, Vendor.user_id == vendor_user.id)
    )
    if owned is None:
        raise OrderNotFound()


async def current_state(session: AsyncSession, order_id: uuid.UUID) -> OrderState | None:
    """The committed state now, with the id of the newest event of the order (0 when none)."""
    last_event = (
        select(func.coalesce(func.max(OrderEvent.id), 0))
        .where(OrderEvent.order_id == order_id)
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(
                last_event,
                Order.status,
                Order.fulfilment_status,
                Payment.status,
                Payment.failure_code,
                Order.status_updated_at,
            )
            .join(Payment, Payment.id == Order.payment_id)
            .where(Order.id == order_id)
        )
    ).one_or_none()
    if row is None:
        return None
    event_id, status, fulfilment, payment_status, failure_code, at = row
    return OrderState(
        event_id=int(event_id),
        order_id=order_id,
        status=str(status),
        fulfilment_status=str(fulfilment),
        payment_status=str(payment_status),
        payment_failure_code=failure_code,
        at=at,
    )


async def events_after(
    session: AsyncSession,
    order_id: uuid.UUID,
    after_id: int,
    *,
    also: list[int] | None = None,
    limit: int = 500,
) -> list[OrderState]:
    """Events of the order with `id > after_id` (plus the ids in `also`), oldest first."""
    condition = OrderEvent.id > after_id
    if also:
        condition = condition | OrderEvent.id.in_(also)
    rows = await session.execute(
        select(OrderEvent)
        .where(OrderEvent.order_id == order_id, condition)
        .order_by(OrderEvent.id)
        .limit(limit)
    )
    return [OrderState.from_event(event) for event in rows.scalars()]
