"""The buyer's "your order has shipped" email (`order:<id>`), with the shipment's carrier and
tracking, handed to the notifications outbox in the caller's transaction (never committed here).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import User
from marketplace_api.fulfilment.models import Shipment
from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.recipients import display_name, fresh, fresh_row, send
from marketplace_api.orders.models import Order
from marketplace_api.orders.notices import order_items
from marketplace_api.vendors.queries import vendor_contacts


async def notify_order_shipped(session: AsyncSession, order_id: uuid.UUID) -> int:
    """The buyer's "your order has shipped", with the shipment's carrier and tracking."""
    order = await fresh_row(session, Order, order_id)
    if order is None:
        return 0
    buyer = await fresh_row(session, User, order.buyer_id)
    if buyer is None:
        return 0
    shipment = (
        await fresh(session, select(Shipment).where(Shipment.order_id == order_id))
    ).scalar_one_or_none()
    vendors = await vendor_contacts(session, [order.vendor_id])
    context = {
        "buyer_name": display_name(buyer),
        "order_id": str(order.id),
        "vendor_name": vendors.get(order.vendor_id, ("", ""))[0],
        "carrier": shipment.carrier if shipment else None,
        "tracking_number": shipment.tracking_number if shipment else None,
        "tracking_url": shipment.tracking_url if shipment else None,
        "items": (await order_items(session, [order.id]))[order.id],
    }
    return await send(session, Kind.order_shipped, f"order:{order.id}", [buyer.email], context)
