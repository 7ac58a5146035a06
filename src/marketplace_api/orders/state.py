"""The order status state machine: the only code that changes `orders.status`.

Every change is a conditional `UPDATE … WHERE status IN (allowed predecessors) RETURNING id`, so two
transactions racing (a cancel and the expiry job, a webhook and a retry) change an order once; the
loser's UPDATE matches nothing. Leaving `pending_payment` for a release status restores stock in
the same transaction, for exactly the orders that transaction moved.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.orders.stock import restore_stock

S = OrderStatus
ALLOWED_TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    S.pending_payment: frozenset({S.paid, S.cancelled, S.expired, S.failed}),
    S.paid: frozenset({S.partially_refunded, S.refunded, S.disputed}),
    # A refund that succeeded and later failed gives the money back: the order returns to
    # what is still refunded (`paid` when nothing is).
    S.partially_refunded: frozenset({S.paid, S.refunded, S.disputed}),
    # A dispute that is won goes back to where the money is; a lost one ends refunded.
    S.disputed: frozenset({S.paid, S.partially_refunded, S.refunded}),
    S.refunded: frozenset({S.paid, S.partially_refunded, S.disputed}),
    S.cancelled: frozenset(),
    S.expired: frozenset(),
    S.failed: frozenset(),
}
RELEASE_STATUSES = frozenset({S.cancelled, S.expired, S.failed})


def predecessors(to: OrderStatus) -> frozenset[OrderStatus]:
    return frozenset(s for s, nexts in ALLOWED_TRANSITIONS.items() if to in nexts)


async def transition_orders(
    session: AsyncSession,
    to: OrderStatus,
    *,
    now: datetime,
    payment_id: uuid.UUID | None = None,
    order_ids: list[uuid.UUID] | None = None,
    values: Mapping[str, Any] | None = None,
) -> list[uuid.UUID]:
    """Move the orders of a payment (or the given orders) to `to` where allowed; return the ids
    that moved. Leaving `pending_payment` for cancelled/expired/failed restores their stock."""
    if (payment_id is None) == (order_ids is None):
        raise ValueError("pass exactly one of payment_id and order_ids")
    stmt = update(Order).where(Order.status.in_(predecessors(to)))
    stmt = (
        stmt.where(Order.payment_id == payment_id)
        if payment_id is not None
        else stmt.where(Order.id.in_(order_ids or []))
    )
    extra = dict(values or {})
    if to is S.paid:
        extra.setdefault("paid_at", now)
    result = await session.execute(
        stmt.values(status=to, status_updated_at=now, **extra)
        .returning(Order.id)
        .execution_options(synchronize_session="fetch")
    )
    moved = [row[0] for row in result.all()]
    if to in RELEASE_STATUSES and moved:
        await restore_stock(session, sorted(moved))
    return moved
