"""Admin: a payment's full money history, and refunds of any payment."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from marketplace_api.api.idempotency import IDEMPOTENCY_ERRORS, Idempotent
from marketplace_api.deps import CurrentAdmin, SessionDep, SettingsDep, StripeGatewayDep
from marketplace_api.errors import problem_responses
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import (
    StripeNotConfigured,
    StripePermissionDenied,
    StripeRequestRejected,
)
from marketplace_api.orders.exceptions import OrderNotFound
from marketplace_api.refunds import service as refunds
from marketplace_api.refunds.exceptions import (
    NothingToRefund,
    OrderNotRefundable,
    OrderRequired,
    PaymentNotFound,
    RefundExceedsRemainder,
)
from marketplace_api.refunds.schemas import PaymentRefundCreate, RefundList, RefundRead
from marketplace_api.reports import service as reports
from marketplace_api.reports.schemas import PaymentHistoryRead
from marketplace_api.transfers.exceptions import OrderDisputed

router = APIRouter(prefix="/payments", tags=["admin"])


@router.get(
    "/{payment_id}",
    summary="A payment's full history: orders, transfers, refunds, disputes, money movements",
    description="`balance` checks the ledger: charge + refunds = transfers + platform_fee + held.",
    responses=problem_responses(PaymentNotFound),
)
async def get_payment_history(payment_id: uuid.UUID, session: SessionDep) -> PaymentHistoryRead:
    return await reports.payment_history(session, payment_id)


@router.post(
    "/{payment_id}/refunds",
    status_code=status.HTTP_201_CREATED,
    response_model=RefundList,
    summary="Refund a payment: one order (fully or partly) or every order in full",
    responses=problem_responses(
        PaymentNotFound,
        OrderNotFound,
        OrderRequired,
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
async def refund_payment(
    payment_id: uuid.UUID,
    data: PaymentRefundCreate,
    session: SessionDep,
    settings: SettingsDep,
    gateway: StripeGatewayDep,
    admin: CurrentAdmin,
    idem: Idempotent,
) -> JSONResponse:
    async def handler(context: IdempotencyContext | None) -> RefundList:
        made = await refunds.refund_payment(
            session,
            gateway,
            settings,
            payment_id,
            data,
            actor_id=admin.id,
            now=idem.now,
            idempotency=context,
        )
        return RefundList(refunds=[RefundRead.model_validate(r) for r in made])

    return await idem.run(admin.id, data, handler, status_code=status.HTTP_201_CREATED)
