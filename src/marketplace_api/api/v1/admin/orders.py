"""Admin: release an order's held funds (separate charges & transfers)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from marketplace_api.api.idempotency import IDEMPOTENCY_ERRORS, Idempotent
from marketplace_api.deps import CurrentAdmin, SessionDep, StripeGatewayDep
from marketplace_api.errors import problem_responses
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import StripeNotConfigured
from marketplace_api.orders.exceptions import OrderNotFound
from marketplace_api.release import service
from marketplace_api.transfers.exceptions import OrderDisputed, OrderNotHeld, OrderNotReleasable
from marketplace_api.transfers.models import ReleaseTrigger
from marketplace_api.transfers.schemas import TransferRead

router = APIRouter(prefix="/orders", tags=["admin"])


@router.post(
    "/{order_id}/release",
    summary="Release an order's held funds to its vendor (one transfer per order)",
    description=(
        "Creates the order's transfer (vendor share minus refunds) once; calling again returns "
        "the same transfer. A transfer Stripe refuses is answered with `status=failed` and "
        "`last_error`, and retried automatically with the same idempotency key. An open refund "
        "request does not block an admin release; an open dispute does."
    ),
    response_model=TransferRead,
    responses=problem_responses(
        OrderNotFound,
        OrderNotHeld,
        OrderNotReleasable,
        OrderDisputed,
        StripeNotConfigured,
        *IDEMPOTENCY_ERRORS,
    ),
)
async def release_order(
    order_id: uuid.UUID,
    session: SessionDep,
    gateway: StripeGatewayDep,
    admin: CurrentAdmin,
    idem: Idempotent,
) -> JSONResponse:
    async def handler(context: IdempotencyContext | None) -> TransferRead:
        transfer = await service.release_order(
            session,
            gateway,
            order_id,
            trigger=ReleaseTrigger.admin,
            now=idem.now,
            actor_id=admin.id,
            idempotency=context,
        )
        return TransferRead.model_validate(transfer)

    return await idem.run(admin.id, None, handler)
