"""What the emails about orders say of their items (title, quantity, amounts), per order."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.notifications.recipients import fresh
from marketplace_api.orders.models import OrderItem


async def order_items(
    session: AsyncSession, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    rows = (
        await fresh(
            session,
            select(OrderItem)
            .where(OrderItem.order_id.in_(order_ids))
            .order_by(OrderItem.order_id, OrderItem.title, OrderItem.id),
        )
    ).scalars()
    items: dict[uuid.UUID, list[dict[str, Any]]] = {order_id: [] for order_id in order_ids}
    for item in rows:
        items[item.order_id].append(
            {
                "title": item.title,
                "quantity": item.quantity,
                "unit_amount": item.unit_amount,
                "amount": item.amount,
            }
        )
    return items
