"""The vendor's view of its sales: each order with its items, shipment, transfer, refunds and open
refund request, read in one query per table whatever the page size."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.fulfilment.models import Shipment
from marketplace_api.fulfilment.schemas import (
    SaleItemRead,
    ShipmentRead,
    VendorOrderPage,
    VendorOrderRead,
)
from marketplace_api.orders.models import FulfilmentStatus, Order, OrderItem, OrderStatus
from marketplace_api.orders.queries import order_page, vendor_sales
from marketplace_api.refunds.models import Refund, RefundRequest, RefundRequestStatus
from marketplace_api.refunds.schemas import RefundRead, RefundRequestRead
from marketplace_api.transfers.models import Transfer
from marketplace_api.transfers.schemas import TransferRead


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


async def vendor_order_read(session: AsyncSession, order: Order) -> VendorOrderRead:
    return (await vendor_order_reads(session, [order]))[0]


async def list_vendor_orders(
    session: AsyncSession,
    vendor_id: uuid.UUID | None,
    *,
    status: OrderStatus | None,
    fulfilment_status: FulfilmentStatus | None,
    limit: int,
    cursor: str | None,
) -> VendorOrderPage:
    """Newest first (index ix_orders_vendor_created_id)."""
    sales = vendor_sales(vendor_id, status=status, fulfilment_status=fulfilment_status)
    page, next_cursor = await order_page(session, sales, limit=limit, cursor=cursor)
    return VendorOrderPage(items=await vendor_order_reads(session, page), next_cursor=next_cursor)
