"""Buyer: confirm delivery (releases held funds) and ask for a refund."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from marketplace_api.api.idempotency import IDEMPOTENCY_ERRORS, Idempotent
from marketplace_api.deps import AppStateDep, CurrentBuyer, SessionDep, rate_limit
from marketplace_api.errors import problem_responses
from marketplace_api.fulfilment import service
from marketplace_api.fulfilment.exceptions import OrderNotShipped
from marketplace_api.fulfilment.schemas import DeliveryConfirmationRead
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import StripeNotConfigured
from marketplace_api.orders.exceptions import OrderNotFound
from marketplace_api.ratelimit import RateLimited
from marketplace_api.refunds import requests
from marketplace_api.refunds.exceptions import NothingToRefund, RefundRequestExists
from marketplace_api.refunds.schemas import RefundRequestCreate, RefundRequestRead
from marketplace_api.transfers.exceptions import OrderNotReleasable
from marketplace_api.transfers.schemas import TransferRead

router = APIRouter(prefix="/orders", tags=["buyer"])


@router.post(
    "/{order_id}/confirm-delivery",
    summary="Confirm an order arrived (releases the vendor's held funds)",
    description=(
        "Marks a shipped order delivered. For separate charges this releases the vendor's share "
        "(one transfer per order, however often it is called), unless a dispute or the buyer's "
        "own refund request is open (`release_blocked_by`)."
    ),
    response_model=DeliveryConfirmationRead,
    responses=problem_responses(
        OrderNotFound,
        OrderNotShipped,
        OrderNotReleasable,
        StripeNotConfigured,
        *IDEMPOTENCY_ERRORS,
    ),
)
async def confirm_delivery(
    order_id: uuid.UUID,
    session: SessionDep,
    state: AppStateDep,
    buyer: CurrentBuyer,
    idem: Idempotent,
) -> JSONResponse:
    async def handler(context: IdempotencyContext | None) -> DeliveryConfirmationRead:
        outcome = await service.confirm_delivery(
            session, state.stripe, buyer.id, order_id, now=idem.now, idempotency=context
        )
        return DeliveryConfirmationRead(
            order_id=outcome.order.id,
            fulfilment_status=outcome.order.fulfilment_status,
            delivered_at=outcome.order.delivered_at,
            transfer=TransferRead.model_validate(outcome.transfer) if outcome.transfer else None,
            release_blocked_by=outcome.blocked_by,
        )

    return await idem.run(buyer.id, None, handler)


@router.post(
    "/{order_id}/refund-requests",
    status_code=status.HTTP_201_CREATED,
    summary="Ask the vendor for a refund (holds the funds while open)",
    description=(
        "One open request per order. While it is open the order's funds are not released "
        "automatically; the vendor or an admin refunds (which approves it) or declines it."
    ),
    response_model=RefundRequestRead,
    responses=problem_responses(
        OrderNotFound, RefundRequestExists, NothingToRefund, RateLimited, *IDEMPOTENCY_ERRORS
    ),
    dependencies=[rate_limit("refund_request", per="user")],
)
async def create_refund_request(
    order_id: uuid.UUID,
    data: RefundRequestCreate,
    session: SessionDep,
    buyer: CurrentBuyer,
    idem: Idempotent,
) -> JSONResponse:
    async def handler(context: IdempotencyContext | None) -> RefundRequestRead:
        request = await requests.create_refund_request(
            session, buyer.id, order_id, data, now=idem.now, idempotency=context
        )
        return RefundRequestRead.model_validate(request)

    return await idem.run(buyer.id, data, handler, status_code=status.HTTP_201_CREATED)
