"""Fulfilment: vendors ship their orders, buyers confirm delivery (which releases held funds),
and the vendor's view of its sales.

`fulfilment_status` changes only here, by conditional UPDATE (unfulfilled → shipped →
delivered), so a double click or two devices ship or confirm an order once.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.fulfilment.exceptions import OrderNotShippable, OrderNotShipped
from marketplace_api.fulfilment.models import Shipment
from marketplace_api.fulfilment.schemas import (
    SaleItemRead,
    ShipmentCreate,
    ShipmentRead,
    VendorOrderPage,
    VendorOrderRead,
)
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import StripeGateway, StripeNotConfigured
from marketplace_api.notifications.notify import notify_order_shipped
from marketplace_api.orders.exceptions import OrderNotFound
from marketplace_api.orders.models import FulfilmentStatus, Order, OrderItem, OrderStatus
from marketplace_api.pagination import keyset_page, split_page
from marketplace_api.payments.models import Payment
from marketplace_api.refunds.models import Refund, RefundRequest, RefundRequestStatus
from marketplace_api.refunds.schemas import RefundRead, RefundRequestRead
from marketplace_api.transfers import release as transfers
from marketplace_api.transfers.exceptions import OrderDisputed, RefundRequestOpen
from marketplace_api.transfers.models import ReleaseTrigger, Transfer
from marketplace_api.transfers.schemas import TransferRead
from marketplace_api.vendors.models import Vendor

SHIPPABLE_STATUSES = (OrderStatus.paid, OrderStatus.partially_refunded)


async def vendor_id_of(session: AsyncSession, user_id: uuid.UUID) -> uuid.UUID | None:
    return (
        await session.execute(select(Vendor.id).where(Vendor.user_id == user_id))
    ).scalar_one_or_none()


async def get_vendor_order(session: AsyncSession, user_id: uuid.UUID, order_id: uuid.UUID) -> Order:
    """The order if it belongs to the vendor of `user_id`; otherwise 404 (never 403)."""
    order = (
        await session.execute(
            select(Order)
            .join(Vendor, Vendor.id == Order.vendor_id)
            .where(Order.id == order_id, Vendor.user_id == user_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if order is None or order.status is OrderStatus.pending_payment:
        raise OrderNotFound()
    return order


async def get_buyer_order(session: AsyncSession, buyer_id: uuid.UUID, order_id: uuid.UUID) -> Order:
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


async def vendor_order_reads(
    session: AsyncSession, orders: Sequence[Order]
) -> list[VendorOrderRead]:
    """Orders with items, shipment, transfer, refunds and open request (one query each)."""
    if not orders:
        return []
    ids = [o.id for o in orders]
    items: dict[uuid.UUID, list[OrderItem]] = defaultdict(list)
    for item in (
        await session.execute(select(OrderItem).where(OrderItem.order_id.in_(ids)))
    ).scalars():
        items[item.order_id].append(item)
    shipments = {
        s.order_id: s
        for s in (await session.execute(select(Shipment).where(Shipment.order_id.in_(ids))))
        .scalars()
        .all()
    }
    transfer_rows = {
        t.order_id: t
        for t in (
            await session.execute(
                select(Transfer)
                .where(Transfer.order_id.in_(ids))
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .all()
    }
    refunds: dict[uuid.UUID, list[Refund]] = defaultdict(list)
    for refund in (
        await session.execute(
            select(Refund)
            .where(Refund.order_id.in_(ids))
            .order_by(Refund.created_at, Refund.id)
            .execution_options(populate_existing=True)
        )
    ).scalars():
        refunds[refund.order_id].append(refund)
    requests = {
        r.order_id: r
        for r in (
            await session.execute(
                select(RefundRequest).where(
                    RefundRequest.order_id.in_(ids),
                    RefundRequest.status == RefundRequestStatus.open,
                )
            )
        )
        .scalars()
        .all()
    }
    reads = []
    for o in orders:
        shipment, transfer, request = (
            shipments.get(o.id),
            transfer_rows.get(o.id),
            requests.get(o.id),
        )
        reads.append(
            VendorOrderRead(
                id=o.id,
                payment_id=o.payment_id,
                status=o.status,
                fulfilment_status=o.fulfilment_status,
                currency=o.currency,
                amount=o.amount,
                platform_fee=o.platform_fee,
                vendor_amount=o.vendor_amount,
                fee_bps=o.fee_bps,
                amount_refunded=o.amount_refunded,
                items=[SaleItemRead.model_validate(i) for i in items[o.id]],
                shipping=o.shipping,
                shipment=ShipmentRead.model_validate(shipment) if shipment else None,
                transfer=TransferRead.model_validate(transfer) if transfer else None,
                refunds=[RefundRead.model_validate(r) for r in refunds[o.id]],
                open_refund_request=RefundRequestRead.model_validate(request) if request else None,
                created_at=o.created_at,
                paid_at=o.paid_at,
                shipped_at=o.shipped_at,
                delivered_at=o.delivered_at,
            )
        )
    return reads


async def list_vendor_orders(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    status: OrderStatus | None,
    fulfilment_status: FulfilmentStatus | None,
    limit: int,
    cursor: str | None,
) -> VendorOrderPage:
    """The vendor's sales, newest first (keyset on `(created_at, id)`); unpaid carts excluded."""
    query = (
        select(Order)
        .join(Vendor, Vendor.id == Order.vendor_id)
        .where(Vendor.user_id == user_id, Order.status != OrderStatus.pending_payment)
    )
    if status is not None:
        query = query.where(Order.status == status)
    if fulfilment_status is not None:
        query = query.where(Order.fulfilment_status == fulfilment_status)
    query = keyset_page(
        query, created_at=Order.created_at, row_id=Order.id, cursor=cursor, limit=limit
    )
    page, next_cursor = split_page((await session.execute(query)).scalars().all(), limit)
    return VendorOrderPage(items=await vendor_order_reads(session, page), next_cursor=next_cursor)


async def ship_order(
    session: AsyncSession,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    data: ShipmentCreate,
    *,
    now: datetime,
) -> VendorOrderRead:
    """unfulfilled → shipped (a paid, undisputed order), with carrier and tracking number.
    Shipping starts the `AUTO_RELEASE_DAYS` clock of separate charges."""
    order = await get_vendor_order(session, user_id, order_id)
    moved = (
        await session.execute(
            update(Order)
            .where(
                Order.id == order.id,
                Order.fulfilment_status == FulfilmentStatus.unfulfilled,
                Order.status.in_(SHIPPABLE_STATUSES),
            )
            .values(fulfilment_status=FulfilmentStatus.shipped, shipped_at=now)
            .returning(Order.id)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if moved is None:
        await session.rollback()
        order = await get_vendor_order(session, user_id, order_id)
        if order.fulfilment_status is not FulfilmentStatus.unfulfilled:
            raise OrderNotShippable(
                f"The order is already {order.fulfilment_status.value}.", reason="already_shipped"
            )
        raise OrderNotShippable(f"A {order.status.value} order cannot be shipped.")
    session.add(
        Shipment(
            order_id=order.id,
            carrier=data.carrier,
            tracking_number=data.tracking_number,
            tracking_url=str(data.tracking_url) if data.tracking_url else None,
            shipped_by_id=user_id,
            shipped_at=now,
        )
    )
    await notify_order_shipped(session, order.id)
    await session.commit()
    order = await get_vendor_order(session, user_id, order_id)
    return (await vendor_order_reads(session, [order]))[0]


@dataclass
class DeliveryOutcome:
    order: Order
    transfer: Transfer | None
    blocked_by: str | None


async def confirm_delivery(
    session: AsyncSession,
    gateway: StripeGateway | None,
    buyer_id: uuid.UUID,
    order_id: uuid.UUID,
    *,
    now: datetime,
    idempotency: IdempotencyContext | None = None,
) -> DeliveryOutcome:
    """shipped → delivered (again: no change), then, for a separate charge, release the vendor's
    share — unless a dispute or the buyer's own refund request is open. The transfer is bound to
    an API Idempotency-Key like an admin release's."""
    order = await get_buyer_order(session, buyer_id, order_id)
    await session.execute(
        update(Order)
        .where(Order.id == order.id, Order.fulfilment_status == FulfilmentStatus.shipped)
        .values(fulfilment_status=FulfilmentStatus.delivered, delivered_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    order = await get_buyer_order(session, buyer_id, order_id)
    if order.fulfilment_status is not FulfilmentStatus.delivered:
        raise OrderNotShipped("Delivery can be confirmed once the vendor has shipped the order.")
    payment_type = (
        await session.execute(select(Payment.charge_type).where(Payment.id == order.payment_id))
    ).scalar_one()
    await session.commit()
    if payment_type is not ChargeType.separate:
        return DeliveryOutcome(order, None, None)
    if gateway is None:
        raise StripeNotConfigured()
    try:
        transfer = await transfers.release_order(
            session,
            gateway,
            order.id,
            trigger=ReleaseTrigger.buyer,
            now=now,
            actor_id=buyer_id,
            idempotency=idempotency,
        )
    except (OrderDisputed, RefundRequestOpen) as exc:
        await session.rollback()
        order = await get_buyer_order(session, buyer_id, order_id)
        await session.commit()
        return DeliveryOutcome(order, None, exc.code)
    return DeliveryOutcome(order, transfer, None)
