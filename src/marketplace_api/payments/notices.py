"""The emails of a successful payment: the buyer's receipt and each vendor's "new paid order";
and the buyer's "you paid twice, one payment was refunded".

Composed from the payment's own rows and handed to the notifications outbox in the caller's
transaction (never committed here). Dedupe keys: `payment:<id>` (receipt), `order:<id>` (vendor),
`duplicate_payment:<pi_…>` (the refunded duplicate).
Each returns how many notifications it created (0 for a repeat, or when the rows are missing).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import User
from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.recipients import (
    display_name,
    emails_for,
    fresh,
    fresh_row,
    iso,
    send,
)
from marketplace_api.notifications.service import notify_many
from marketplace_api.orders.models import Order
from marketplace_api.orders.notices import order_items
from marketplace_api.payments.models import DuplicatePaymentRefund, Payment
from marketplace_api.vendors.queries import vendor_contacts


async def notify_order_paid(session: AsyncSession, payment_id: uuid.UUID) -> int:
    """The buyer's receipt (every order of the payment: items, amounts, vendor) and a "new paid
    order" email to each vendor. Call when the payment has succeeded and its orders are paid."""
    payment = await fresh_row(session, Payment, payment_id)
    if payment is None:
        return 0
    orders = list(
        (
            await fresh(
                session, select(Order).where(Order.payment_id == payment_id).order_by(Order.id)
            )
        ).scalars()
    )
    return await notify_orders_paid(session, payment, orders)


async def notify_orders_paid(
    session: AsyncSession, payment: Payment, orders: Sequence[Order]
) -> int:
    """`notify_order_paid` for a payment and its orders (all of them, by id) the caller has
    just read in this transaction."""
    buyer = await fresh_row(session, User, payment.buyer_id)
    if not orders or buyer is None:
        return 0
    items = await order_items(session, [o.id for o in orders])
    vendors = await vendor_contacts(session, [o.vendor_id for o in orders])
    paid_at = payment.succeeded_at or max((o.paid_at or o.status_updated_at) for o in orders)
    receipt = {
        "buyer_name": display_name(buyer),
        "payment_id": str(payment.id),
        "currency": payment.currency,
        "total": sum(o.amount for o in orders),
        "paid_at": iso(paid_at),
        "orders": [
            {
                "order_id": str(o.id),
                "vendor_name": vendors.get(o.vendor_id, ("", ""))[0],
                "amount": o.amount,
                "items": items[o.id],
            }
            for o in orders
        ],
    }
    emails = emails_for(Kind.order_paid, f"payment:{payment.id}", [buyer.email], receipt)
    for order in orders:
        vendor_name, vendor_email = vendors.get(order.vendor_id, ("", ""))
        context = {
            "vendor_name": vendor_name,
            "buyer_name": display_name(buyer),
            "order_id": str(order.id),
            "currency": order.currency,
            "amount": order.amount,
            "platform_fee": order.platform_fee,
            "vendor_amount": order.vendor_amount,
            "items": items[order.id],
        }
        emails += emails_for(Kind.vendor_new_order, f"order:{order.id}", [vendor_email], context)
    return len(await notify_many(session, emails))


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
