"""Reads of the orders table that other domains build on: an order by its owner (buyer or vendor),
the orders of a payment, and the order locked for a money movement."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.orders.exceptions import OrderNotFound
from marketplace_api.orders.models import FulfilmentStatus, Order, OrderStatus
from marketplace_api.pagination import keyset_page, split_page


async def _owned_order(
    session: AsyncSession, order_id: uuid.UUID, owner: ColumnElement[Any]
) -> Order:
    order = (
        await session.execute(
            select(Order)
            .where(Order.id == order_id, owner)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if order is None:
        raise OrderNotFound()
    return order


async def get_buyer_order(session: AsyncSession, buyer_id: uuid.UUID, order_id: uuid.UUID) -> Order:
    """The buyer's order; another buyer's order is not found (404, never 403)."""
    return await _owned_order(session, order_id, Order.buyer_id == buyer_id)


async def get_vendor_order(
    session: AsyncSession, vendor_id: uuid.UUID | None, order_id: uuid.UUID
) -> Order:
    """The vendor's sale; another vendor's order, or a cart not paid yet, is not found (404).
    A vendor user without a vendor profile yet (`vendor_id` None) has no sales."""
    order = await _owned_order(session, order_id, Order.vendor_id == vendor_id)
    if order.status is OrderStatus.pending_payment:
        raise OrderNotFound()
    return order


def vendor_sales(
    vendor_id: uuid.UUID | None,
    *,
    status: OrderStatus | None = None,
    fulfilment_status: FulfilmentStatus | None = None,
) -> Select[Order]:
    """The vendor's sales: its orders except unpaid carts, optionally of one status (none for a
    vendor user without a vendor profile yet, `vendor_id` None)."""
    query = select(Order).where(
        Order.vendor_id == vendor_id, Order.status != OrderStatus.pending_payment
    )
    if status is not None:
        query = query.where(Order.status == status)
    if fulfilment_status is not None:
        query = query.where(Order.fulfilment_status == fulfilment_status)
    return query


async def order_page(
    session: AsyncSession, query: Select[Order], *, limit: int, cursor: str | None
) -> tuple[list[Order], str | None]:
    """A page of the orders `query` selects, newest first, keyset-paginated on (created_at, id)
    (the buyer's and the vendor's indexes end with those columns), and the next page's cursor."""
    page = keyset_page(
        query, created_at=Order.created_at, row_id=Order.id, cursor=cursor, limit=limit
    )
    return split_page((await session.execute(page)).scalars().all(), limit)


# Built once: on the webhook's hot path (a payment succeeding).
_OF_PAYMENT = (
    select(Order)
    .where(Order.payment_id == bindparam("payment_id"))
    .order_by(Order.id)
    .execution_options(populate_existing=True)
)


async def orders_of_payment(session: AsyncSession, payment_id: uuid.UUID) -> list[Order]:
    result = await session.execute(_OF_PAYMENT, {"payment_id": payment_id})
    return list(result.scalars().all())


async def lock_order(session: AsyncSession, order_id: uuid.UUID) -> Order | None:
    """The order, locked `FOR UPDATE` (release and refunds of one order serialize on it)."""
    return await session.get(Order, order_id, with_for_update=True, populate_existing=True)
