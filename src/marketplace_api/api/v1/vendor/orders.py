"""Vendor: its sales (orders with amounts and fee), shipping, refunds of its own orders."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse

from marketplace_api.api.idempotency import IDEMPOTENCY_ERRORS, Idempotent
from marketplace_api.api.params import CursorQuery
from marketplace_api.deps import (
    CurrentVendorId,
    CurrentVendorUser,
    SessionDep,
    SettingsDep,
    StripeGatewayDep,
)
from marketplace_api.errors import problem_responses
from marketplace_api.fulfilment import service, views
from marketplace_api.fulfilment.exceptions import OrderNotShippable
from marketplace_api.fulfilment.schemas import ShipmentCreate, VendorOrderPage, VendorOrderRead
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import (
    StripeNotConfigured,
    StripePermissionDenied,
    StripeRequestRejected,
)
from marketplace_api.orders import queries
from marketplace_api.orders.exceptions import OrderNotFound
from marketplace_api.orders.models import FulfilmentStatus, OrderStatus
from marketplace_api.pagination import InvalidCursor
from marketplace_api.refunds import service as refunds
from marketplace_api.refunds.exceptions import (
    NothingToRefund,
    OrderNotRefundable,
    RefundExceedsRemainder,
    RefundRequestClosed,
    RefundRequestNotFound,
)
from marketplace_api.refunds.models import RefundOrigin
from marketplace_api.refunds.schemas import (
    RefundCreate,
    RefundRead,
    RefundRequestDecline,
    RefundRequestRead,
)
from marketplace_api.transfers.exceptions import OrderDisputed

router = APIRouter(prefix="/orders", tags=["vendor"])


@router.get(
    "",
    summary="List the vendor's sales, newest first",
    responses=problem_responses(InvalidCursor),
)
async def list_vendor_orders(
    session: SessionDep,
    vendor_id: CurrentVendorId,
    order_status: Annotated[OrderStatus | None, Query(alias="status")] = None,
    fulfilment_status: Annotated[FulfilmentStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: CursorQuery = None,
) -> VendorOrderPage:
    return await views.list_vendor_orders(
        session,
        vendor_id,
        status=order_status,
        fulfilment_status=fulfilment_status,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/{order_id}",
    summary="Show one of the vendor's sales with its shipment, transfer and refunds",
    responses=problem_responses(OrderNotFound),
)
async def get_vendor_order(
    order_id: uuid.UUID, session: SessionDep, vendor_id: CurrentVendorId
) -> VendorOrderRead:
    order = await queries.get_vendor_order(session, vendor_id, order_id)
    return await views.vendor_order_read(session, order)


@router.post(
    "/{order_id}/ship",
    summary="Mark an order shipped, with carrier and tracking number",
    description="Starts the AUTO_RELEASE_DAYS clock of held (separate-charge) funds.",
    responses=problem_responses(OrderNotFound, OrderNotShippable),
)
async def ship_order(
    order_id: uuid.UUID,
    data: ShipmentCreate,
    session: SessionDep,
    user: CurrentVendorUser,
    vendor_id: CurrentVendorId,
) -> VendorOrderRead:
    return await service.ship_order(
        session, vendor_id, user.id, order_id, data, now=datetime.now(UTC)
    )


@router.post(
    "/{order_id}/refunds",
    status_code=status.HTTP_201_CREATED,
    response_model=RefundRead,
    summary="Refund one of the vendor's orders, fully or partly",
    description=(
        "Up to what is left to refund. Approves the buyer's open refund request, if any. The "
        "refund is `pending` until Stripe confirms it (`succeeded`); if Stripe cannot be "
        "reached it stays `pending` with `last_error` and is retried automatically."
    ),
    responses=problem_responses(
        OrderNotFound,
        NothingToRefund,
        RefundExceedsRemainder,
        OrderNotRefundable,
        OrderDisputed,
        StripeRequestRejected,
        StripePermissionDenied,
        StripeNotConfigured,
        *IDEMPOTENCY_ERRORS,
    ),
)
async def refund_vendor_order(
    order_id: uuid.UUID,
    data: RefundCreate,
    session: SessionDep,
    settings: SettingsDep,
    gateway: StripeGatewayDep,
    user: CurrentVendorUser,
    idem: Idempotent,
) -> JSONResponse:
    async def handler(context: IdempotencyContext | None) -> RefundRead:
        refund = await refunds.create_refund(
            session,
            gateway,
            settings,
            order_id,
            data,
            origin=RefundOrigin.vendor,
            actor_id=user.id,
            now=idem.now,
            vendor_user_id=user.id,
            idempotency=context,
        )
        return RefundRead.model_validate(refund)

    return await idem.run(user.id, data, handler, status_code=status.HTTP_201_CREATED)


@router.post(
    "/{order_id}/refund-requests/{request_id}/decline",
    summary="Decline the buyer's refund request (the funds may be released again)",
    responses=problem_responses(OrderNotFound, RefundRequestNotFound, RefundRequestClosed),
)
async def decline_refund_request(
    order_id: uuid.UUID,
    request_id: uuid.UUID,
    data: RefundRequestDecline,
    session: SessionDep,
    vendor_id: CurrentVendorId,
) -> RefundRequestRead:
    request = await service.decline_refund_request(
        session, vendor_id, order_id, request_id, data.note, now=datetime.now(UTC)
    )
    return RefundRequestRead.model_validate(request)
