"""The order status state machine: the only code that changes `orders.status`.

Every change is a conditional `UPDATE … WHERE status IN (allowed predecessors) RETURNING`, so two
transactions racing (a cancel and the expiry job, a webhook and a retry) change an order once; the
loser's UPDATE matches nothing. Leaving `pending_payment` for a release status restores stock in
the same transaction, for exactly the orders that transaction moved.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Update, bindparam, inspect, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.orders.stock import restore_stock
from marketplace_api.tables import columns, load_row, table_of

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


# Built once (`tables`): the new status and values are parameters (they become the SET); the
# updated rows come back whole, for the orders this session holds.
_ORDERS = table_of(Order)
_ORDER_MAPPER = inspect(Order)


def _moving(to: OrderStatus, selected: ColumnElement[bool]) -> Update:
    return (
        update(_ORDERS)
        .where(selected, _ORDERS.c.status.in_(predecessors(to)))
        .returning(*_ORDERS.c)
    )


_BY_PAYMENT = {to: _moving(to, _ORDERS.c.payment_id == bindparam("payment_id_")) for to in S}
_BY_ID = {to: _moving(to, _ORDERS.c.id.in_(bindparam("order_ids_", expanding=True))) for to in S}


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
    that moved. Leaving `pending_payment` for cancelled/expired/failed restores their stock.
    Orders of this session that moved are refreshed from the updated rows."""
    if (payment_id is None) == (order_ids is None):
        raise ValueError("pass exactly one of payment_id and order_ids")
    # The moved orders this session holds take the updated rows whole: write any pending change
    # of theirs first, or it would be silently replaced.
    await session.flush()
    new_values = {"status": to, "status_updated_at": now, **(values or {})}
    if to is S.paid:
        new_values.setdefault("paid_at", now)
    statement, selected = (
        (_BY_PAYMENT[to], {"payment_id_": payment_id})
        if payment_id is not None
        else (_BY_ID[to], {"order_ids_": order_ids})
    )
    rows = (await session.execute(statement, {**selected, **columns(_ORDERS, new_values)})).all()
    identity_map = session.sync_session.identity_map
    for row in rows if identity_map else ():
        order = identity_map.get(_ORDER_MAPPER.identity_key_from_primary_key((row.id,)))
        if order is not None:
            load_row(order, row)
    moved = [row.id for row in rows]
    if to in RELEASE_STATUSES and moved:
        await restore_stock(session, sorted(moved))
    return moved
