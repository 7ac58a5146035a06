"""Buyer payments: /v1/buyer/payments."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from marketplace_api.deps import CurrentBuyer, SessionDep
from marketplace_api.errors import problem_responses
from marketplace_api.payments import queries
from marketplace_api.payments.exceptions import PaymentNotFound
from marketplace_api.payments.schemas import PaymentRead

router = APIRouter(prefix="/payments", tags=["buyer"])


@router.get(
    "/{payment_id}",
    summary="One of the buyer's payments: status, amounts and why the last attempt failed",
    responses=problem_responses(PaymentNotFound),
)
async def get_payment(
    payment_id: uuid.UUID, buyer: CurrentBuyer, session: SessionDep
) -> PaymentRead:
    payment = await queries.get_buyer_payment(session, buyer.id, payment_id)
    return await queries.payment_read(session, payment)
