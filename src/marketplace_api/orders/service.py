"""Buyer-side reads and actions on orders: list (keyset pagination), get, cancel, Checkout."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.orders.exceptions import OrderNotCancellable, OrderNotFound
from marketplace_api.orders.models import Order, OrderItem
from marketplace_api.orders.schemas import CheckoutRead, OrderItemRead, OrderPage, OrderRead
from marketplace_api.pagination import keyset_page, split_page
from marketplace_api.payments.exceptions import PaymentNotFound
from marketplace_api.payments.models import PAYABLE_STATUSES, Payment, PaymentStatus
from marketplace_api.payments.schemas import PaymentRead


def _order_read(
    order: Order, items: Sequence[OrderItem], payment_status: PaymentStatus
) -> OrderRead:
    return OrderRead(
        id=order.id,
        payment_id=order.payment_id,
        vendor_id=order.vendor_id,
        status=order.status,
        fulfilment_status=order.fulfilment_status,
        payment_status=payment_status,
        currency=order.currency,
        amount=order.amount,
        platform_fee=order.platform_fee,
        vendor_amount=order.vendor_amount,
        amount_refunded=order.amount_refunded,
        reservation_expires_at=order.reservation_expires_at,
        shipping=order.shipping,
        contact=order.contact,
        items=[OrderItemRead.model_validate(i) for i in items],
        created_at=order.created_at,
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
    rows = await session.execute(
        select(Payment.id, Payment.status).where(Payment.id.in_({o.payment_id for o in orders}))
    )
    statuses: dict[uuid.UUID, PaymentStatus] = {pid: st for pid, st in rows.all()}  # noqa: C416
    return [_order_read(o, items[o.id], statuses[o.payment_id]) for o in orders]


async def orders_of_payment(session: AsyncSession, payment_id: uuid.UUID) -> list[Order]:
    result = await session.execute(
        select(Order)
        .where(Order.payment_id == payment_id)
        .order_by(Order.id)
        .execution_options(populate_existing=True)
    )
    return list(result.scalars().all())


def _checkout_read(payment: Payment, orders: list[OrderRead]) -> CheckoutRead:
    return CheckoutRead(
        payment_id=payment.id,
        client_secret=payment.client_secret if payment.status in PAYABLE_STATUSES else None,
        amount=payment.amount,
        currency=payment.currency,
        platform_fee=payment.platform_fee,
        charge_type=payment.charge_type,
        stripe_account=payment.stripe_account_id,
        status=payment.status,
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
    """Newest first, keyset-paginated on (created_at, id) (index ix_orders_buyer_created_id)."""
    query = keyset_page(
        select(Order).where(Order.buyer_id == buyer_id),
        created_at=Order.created_at,
        row_id=Order.id,
        cursor=cursor,
        limit=limit,
    )
    page, next_cursor = split_page((await session.execute(query)).scalars().all(), limit)
    return OrderPage(items=await order_reads(session, page), next_cursor=next_cursor)


async def get_buyer_order(session: AsyncSession, buyer_id: uuid.UUID, order_id: uuid.UUID) -> Order:
    """The buyer's order; another buyer's order is not found (404, never 403)."""
    order = (
        await session.execute(
            select(Order)
            .where(Order.id == order_id, Order.buyer_id == buyer_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if order is None:
        raise OrderNotFound()
    return order


async def get_buyer_payment(
    session: AsyncSession, buyer_id: uuid.UUID, payment_id: uuid.UUID
) -> Payment:
    payment = (
        await session.execute(
            select(Payment)
            .where(Payment.id == payment_id, Payment.buyer_id == buyer_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if payment is None:
        raise PaymentNotFound()
    return payment


async def payment_read(session: AsyncSession, payment: Payment) -> PaymentRead:
    order_ids = [o.id for o in await orders_of_payment(session, payment.id)]
    return PaymentRead(
        id=payment.id,
        status=payment.status,
        charge_type=payment.charge_type,
        amount=payment.amount,
        currency=payment.currency,
        platform_fee=payment.platform_fee,
        amount_refunded=payment.amount_refunded,
        client_secret=payment.client_secret if payment.status in PAYABLE_STATUSES else None,
        stripe_account=payment.stripe_account_id,
        failure_code=payment.failure_code,
        failure_message=payment.failure_message,
        order_ids=order_ids,
        expires_at=payment.reservation_expires_at,
        created_at=payment.created_at,
    )


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
