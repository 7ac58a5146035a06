"""The buyer's refund emails: a refund issued (`refund:<id>`) and a duplicate payment refunded
whole (`duplicate_payment:<pi_…>`).

Composed from the refund rows and handed to the notifications outbox in the caller's transaction
(never committed here); each returns how many notifications it created (0 for a repeat).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import User
from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.recipients import display_name, fresh, fresh_row, send
from marketplace_api.orders.models import Order
from marketplace_api.payments.models import Payment
from marketplace_api.refunds.models import DuplicatePaymentRefund, Refund
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


async def notify_duplicate_payment_refunded(session: AsyncSession, duplicate_id: uuid.UUID) -> int:
    """The buyer's "you paid twice, one payment was refunded": call when the duplicate's refund
    has succeeded (one email per duplicate)."""
    row = (
        await fresh(
            session, select(DuplicatePaymentRefund).where(DuplicatePaymentRefund.id == duplicate_id)
        )
    ).scalar_one_or_none()
    if row is None:
        return 0
    payment = await session.get(Payment, row.payment_id)
    buyer = await fresh_row(session, User, payment.buyer_id) if payment is not None else None
    if buyer is None:
        return 0
    context = {
        "buyer_name": display_name(buyer),
        "payment_id": str(row.payment_id),
        "amount": row.amount,
        "currency": row.currency,
    }
    return await send(
        session,
        Kind.duplicate_payment_refunded,
        f"duplicate_payment:{row.stripe_payment_intent_id}",
        [buyer.email],
        context,
    )
