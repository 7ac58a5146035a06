"""Stock reservation: conditional UPDATEs, so the last unit is sold once across API processes.

A reservation decrements `listings.stock_quantity` at checkout (the CHECK constraint refuses to go
below zero as a last line of defence). Reserved stock simply stays sold when the payment succeeds;
it is restored when the order leaves `pending_payment` for cancelled/expired/failed, and only the
transaction whose conditional UPDATE moved the order's status restores it (see `orders.state`).
Rows are always touched in listing-id order so concurrent multi-item carts cannot deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.orders.exceptions import OutOfStock
from marketplace_api.orders.models import OrderItem

_RESERVE = text(
    "UPDATE listings SET stock_quantity = stock_quantity - :quantity, updated_at = now() "
    "WHERE id = :listing_id AND stock_quantity >= :quantity AND status = 'active' "
    "RETURNING stock_quantity"
)
_RESTORE = text(
    "UPDATE listings SET stock_quantity = stock_quantity + :quantity, updated_at = now() "
    "WHERE id = :listing_id"
)


async def reserve_stock(session: AsyncSession, quantities: Mapping[uuid.UUID, int]) -> None:
    """Take `quantities` out of stock, all or nothing (the caller rolls back on `OutOfStock`)."""
    for listing_id in sorted(quantities):
        result = await session.execute(
            _RESERVE, {"listing_id": listing_id, "quantity": quantities[listing_id]}
        )
        if result.first() is None:
            raise OutOfStock(listing_id)


async def restore_stock(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> None:
    """Put the items of `order_ids` back in stock. Call only for orders this transaction has just
    moved out of `pending_payment` (that status change is the exactly-once guard)."""
    if not order_ids:
        return
    rows = await session.execute(
        select(OrderItem.listing_id, func.sum(OrderItem.quantity))
        .where(OrderItem.order_id.in_(order_ids))
        .group_by(OrderItem.listing_id)
        .order_by(OrderItem.listing_id)
    )
    for listing_id, quantity in rows.all():
        await session.execute(_RESTORE, {"listing_id": listing_id, "quantity": int(quantity)})
