"""The buyer's "refund issued" email (`refund:<id>`).

Composed from the refund rows and handed to the notifications outbox in the caller's transaction
(never committed here); each returns how many notifications it created (0 for a repeat).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import User
from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.recipients import display_name, fresh_row, send
from marketplace_api.orders.models import Order
from marketplace_api.refunds.models import Refund
from marketplace_api.vendors.queries import vendor_contacts


async def notify_refund_issued(session: AsyncSession, refund_id: uuid.UUID) -> int:
    """The buyer's "refund issued": call when the refund row has succeeded (and the order's
    `amount_refunded` includes it)."""
    refund = await fresh_row(session, Refund, refund_id)
    if refund is None:
        return 0
    order = await fresh_row(session, Order, refund.order_id)
    if order is None:
        return 0
    buyer = await fresh_row(session, User, order.buyer_id)
    if buyer is None:
        return 0
    vendors = await vendor_contacts(session, [order.vendor_id])
    context = {
        "buyer_name": display_name(buyer),
        "order_id": str(order.id),
        "vendor_name": vendors.get(order.vendor_id, ("", ""))[0],
        "amount": refund.amount,
        "currency": refund.currency,
        "amount_refunded": max(order.amount_refunded, refund.amount),
        "order_amount": order.amount,
        "reason": refund.reason.value.replace("_", " ") if refund.reason else None,
    }
    return await send(session, Kind.refund_issued, f"refund:{refund.id}", [buyer.email], context)
