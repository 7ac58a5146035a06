"""The order state machine's UPDATE is a Core statement built once: orders the session holds
follow it as the ORM's synchronisation would, and a value naming no column is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.orders.state import transition_orders
from tests.conftest import AuthUser
from tests.fixtures.orders import place_order

T1 = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)


async def _order(session: AsyncSession, buyer: AuthUser) -> Order:
    order = (await place_order(session, buyer.user)).order
    await session.refresh(order)
    return order


async def test_orders_held_by_the_session_follow_their_transition(
    session: AsyncSession, buyer: AuthUser
) -> None:
    order = await _order(session, buyer)
    before = order.updated_at

    moved = await transition_orders(session, OrderStatus.paid, now=T1, payment_id=order.payment_id)

    assert moved == [order.id]
    # The held object has the updated row (database defaults too), as loaded: nothing to flush.
    assert (order.status, order.status_updated_at, order.paid_at) == (OrderStatus.paid, T1, T1)
    assert order.updated_at >= before
    assert order not in session.dirty
    # Not allowed from paid: nothing moves, the object keeps its values.
    assert await transition_orders(session, OrderStatus.expired, now=T1, order_ids=[order.id]) == []
    assert order.status is OrderStatus.paid


async def test_a_value_naming_no_column_is_refused(session: AsyncSession, buyer: AuthUser) -> None:
    order = await _order(session, buyer)
    with pytest.raises(ValueError, match="orders has no column 'paid_on'"):
        await transition_orders(
            session, OrderStatus.paid, now=T1, order_ids=[order.id], values={"paid_on": T1}
        )
    assert order.status is OrderStatus.pending_payment
