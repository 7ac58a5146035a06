"""Buyer-side views and actions on orders: the order and checkout answers, the buyer's list
(keyset pagination), and cancelling an unpaid order."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import User
from marketplace_api.checkout.schemas import (
    CheckoutRead,
    CheckoutSessionRead,
    OrderItemRead,
    OrderPage,
    OrderRead,
)
from marketplace_api.config import Settings
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.orders.exceptions import OrderNotCancellable
from marketplace_api.orders.models import Order, OrderItem
from marketplace_api.orders.queries import get_buyer_order, order_page, orders_of_payment
from marketplace_api.payments.exceptions import PaymentNotPayable
from marketplace_api.payments.models import PAYABLE_STATUSES, Payment, PaymentStatus
from marketplace_api.payments.queries import get_buyer_payment, payment_statuses
from marketplace_api.payments.service import cancel_payment, create_checkout_session
from marketplace_api.reads import read_from


def _order_read(
    order: Order, items: Sequence[OrderItem], payment_status: PaymentStatus
) -> OrderRead:
    return read_from(
        OrderRead,
        order,
        payment_status=payment_status,
        items=[OrderItemRead.model_validate(i) for i in items],
    )


async def order_reads(session: AsyncSession, orders: Sequence[Order]) -> list[OrderRead]:
    """Orders with their items and their payment's status (two queries, whatever the count)."""
    if not orders:
        return []
    ids = [o.id for o in orders]
    items: dict[uuid.UUID, list[OrderItem]] = defaultdict(list)
    for item in (
        await session.execute(
            select(OrderItem).where(OrderItem.order_id.in_(ids)).order_by(OrderItem.listing_id)
        )
    ).scalars():
        items[item.order_id].append(item)
    statuses = await payment_statuses(session, (o.payment_id for o in orders))
    return [_order_read(o, items[o.id], statuses[o.payment_id]) for o in orders]


def _checkout_read(payment: Payment, orders: list[OrderRead]) -> CheckoutRead:
    return read_from(
        CheckoutRead,
        payment,
        payment_id=payment.id,
        client_secret=payment.client_secret if payment.status in PAYABLE_STATUSES else None,
        stripe_account=payment.stripe_account_id,
        orders=orders,
        expires_at=payment.reservation_expires_at,
    )


async def checkout_read(session: AsyncSession, payment: Payment) -> CheckoutRead:
    """The checkout answer from the database (an Idempotency-Key retry resuming a payment)."""
    orders = await orders_of_payment(session, payment.id)
    return _checkout_read(payment, await order_reads(session, orders))


def placed_checkout_read(
    payment: Payment, orders: Sequence[Order], items: Sequence[OrderItem]
) -> CheckoutRead:
    """The same answer as `checkout_read`, without a round trip, for the checkout that has just
    written `orders` and `items` (server defaults such as `created_at` came back with the
    INSERTs' RETURNING) and recorded the PaymentIntent with `payment`'s UPDATE ... RETURNING.
    Orders by id and items by listing id, as `checkout_read` loads them."""
    by_order: dict[uuid.UUID, list[OrderItem]] = defaultdict(list)
    for item in sorted(items, key=lambda i: i.listing_id):
        by_order[item.order_id].append(item)
    return _checkout_read(
        payment,
        [
            _order_read(o, by_order[o.id], payment.status)
            for o in sorted(orders, key=lambda o: o.id)
        ],
    )


async def list_buyer_orders(
    session: AsyncSession, buyer_id: uuid.UUID, *, limit: int, cursor: str | None
) -> OrderPage:
    """Newest first (index ix_orders_buyer_created_id)."""
    query = select(Order).where(Order.buyer_id == buyer_id)
    page, next_cursor = await order_page(session, query, limit=limit, cursor=cursor)
    return OrderPage(items=await order_reads(session, page), next_cursor=next_cursor)


def ensure_cancellable(payment: Payment) -> bool:
    """True when the payment must be cancelled; False when it already ended without money
    (cancelling again answers the current state); 409 when it is paid or in flight."""
    if payment.status in (PaymentStatus.canceled, PaymentStatus.expired, PaymentStatus.failed):
        return False
    if payment.status not in PAYABLE_STATUSES:
        raise OrderNotCancellable(
            f"The payment is {payment.status.value}; ask for a refund instead.",
            payment_status=payment.status.value,
        )
    return True


async def order_read(session: AsyncSession, order: Order) -> OrderRead:
    return (await order_reads(session, [order]))[0]


async def cancel_order(
    session: AsyncSession,
    gateway: StripeGateway,
    buyer_id: uuid.UUID,
    order_id: uuid.UUID,
    *,
    now: datetime,
) -> OrderRead:
    """Cancel the order's unpaid payment (and so every order of it) at Stripe first, so it cannot
    be paid afterwards; answer the order as it is now. Cancelling creates nothing and is
    idempotent by itself (Stripe key `payment:<id>:cancel`, a conditional status change), so a
    retry simply runs it again."""
    order = await get_buyer_order(session, buyer_id, order_id)
    payment = await get_buyer_payment(session, buyer_id, order.payment_id)
    if ensure_cancellable(payment):
        try:
            payment = await cancel_payment(session, gateway, payment, now=now)
        except PaymentNotPayable as exc:
            raise OrderNotCancellable(exc.detail) from exc
        ensure_cancellable(payment)
    return await order_read(session, await get_buyer_order(session, buyer_id, order_id))


async def order_checkout_session(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    buyer: User,
    order_id: uuid.UUID,
    *,
    now: datetime,
    idempotency: IdempotencyContext | None = None,
) -> CheckoutSessionRead:
    """A Stripe Checkout session paying the order's payment (all the orders of its cart)."""
    order = await get_buyer_order(session, buyer.id, order_id)
    payment = await get_buyer_payment(session, buyer.id, order.payment_id)
    created = await create_checkout_session(
        session,
        gateway,
        settings,
        payment,
        customer_email=buyer.email,
        now=now,
        idempotency=idempotency,
    )
    return CheckoutSessionRead(
        url=created.url, session_id=created.session_id, expires_at=created.expires_at
    )
