"""Fulfilment: vendors ship their orders, buyers confirm delivery (which releases held funds).

`fulfilment_status` changes only here, by conditional UPDATE (unfulfilled → shipped →
delivered), so a double click or two devices ship or confirm an order once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.fulfilment.exceptions import OrderNotShippable, OrderNotShipped
from marketplace_api.fulfilment.models import Shipment
from marketplace_api.fulfilment.notices import notify_order_shipped
from marketplace_api.fulfilment.schemas import ShipmentCreate, VendorOrderRead
from marketplace_api.fulfilment.views import vendor_order_read
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import StripeGateway, StripeNotConfigured
from marketplace_api.orders.models import FulfilmentStatus, Order, OrderStatus
from marketplace_api.orders.queries import get_buyer_order, get_vendor_order
from marketplace_api.payments.models import Payment
from marketplace_api.refunds import requests
from marketplace_api.refunds.models import RefundRequest
from marketplace_api.release.service import release_order
from marketplace_api.transfers.exceptions import OrderDisputed, RefundRequestOpen
from marketplace_api.transfers.models import ReleaseTrigger, Transfer

SHIPPABLE_STATUSES = (OrderStatus.paid, OrderStatus.partially_refunded)


async def ship_order(
    session: AsyncSession,
    vendor_id: uuid.UUID | None,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    data: ShipmentCreate,
    *,
    now: datetime,
) -> VendorOrderRead:
    """unfulfilled → shipped (a paid, undisputed order), with carrier and tracking number.
    Shipping starts the `AUTO_RELEASE_DAYS` clock of separate charges."""
    order = await get_vendor_order(session, vendor_id, order_id)
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
        order = await get_vendor_order(session, vendor_id, order_id)
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
    return await vendor_order_read(session, await get_vendor_order(session, vendor_id, order_id))


async def decline_refund_request(
    session: AsyncSession,
    vendor_id: uuid.UUID | None,
    order_id: uuid.UUID,
    request_id: uuid.UUID,
    note: str,
    *,
    now: datetime,
) -> RefundRequest:
    """The vendor declines the buyer's refund request on one of its orders (the funds may then
    be released again)."""
    await get_vendor_order(session, vendor_id, order_id)
    return await requests.decline_refund_request(session, order_id, request_id, note, now=now)


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
        transfer = await release_order(
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
