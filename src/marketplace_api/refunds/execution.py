"""Making a reserved refund at Stripe: claim the row, `POST /v1/refunds` with its key
`refund:<id>` and our ids in metadata, record the answer (`stripe_attempts`). A refund that
succeeded then gets its transfer reversal made (separate charges already released).

Called right after the reservation (`service.create_refund`) and by the retry job.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api import stripe_attempts
from marketplace_api.config import ChargeType
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.payments.queries import fresh_payment, payment_account
from marketplace_api.refunds import reversals
from marketplace_api.refunds.models import Refund, RefundStatus
from marketplace_api.refunds.state import transition_refund
from marketplace_api.refunds.sync import (
    apply_refund_object,
    cancel_reversal_of,
    get_refund,
    reopen_request,
)
from marketplace_api.stripe_attempts import Failure
from marketplace_api.transfers.models import TransferReversal


async def execute_refund(
    session: AsyncSession,
    gateway: StripeGateway,
    refund_id: uuid.UUID,
    *,
    now: datetime,
    raise_refused: bool = False,
    resume: bool = False,
) -> Refund:
    """Make the Stripe call of a reserved refund (if nobody else is making it right now), record
    the answer, then make its transfer reversal if it has one.

    `resume`: the retry of the API request that reserved it (its Idempotency-Key lock proves the
    first attempt is over) takes the call over at once, without waiting for that attempt's lease;
    the same Stripe key makes a second call replay the first."""
    refund, claimed = await stripe_attempts.claim(
        session,
        Refund,
        refund_id,
        Refund.status == RefundStatus.pending,
        Refund.stripe_refund_id.is_(None),
        now=now,
        resume=resume,
    )
    if not claimed:
        await session.commit()
        if resume and refund.status is RefundStatus.succeeded:  # its reversal may be left
            await _execute_reversal_of(session, gateway, refund.id, now=now)
            return await get_refund(session, refund.id)
        return refund
    payment = await fresh_payment(session, refund.payment_id)
    failure = await stripe_attempts.call(
        session,
        "refund",
        partial(
            gateway.create_refund,
            payment_intent=str(payment.stripe_payment_intent_id),
            amount=refund.amount,
            reason=refund.reason.value,
            metadata={
                "refund_id": str(refund.id),
                "order_id": str(refund.order_id),
                "payment_id": str(refund.payment_id),
            },
            idempotency_key=refund.idempotency_key,
            reverse_transfer=True if payment.charge_type is ChargeType.destination else None,
            refund_application_fee=refund.refund_application_fee,
            stripe_account=payment_account(payment),
        ),
        ids={"refund_id": str(refund.id)},
        record=lambda answer: apply_refund_object(session, answer, observed_at=now),
        record_failure=lambda failure: _record_failure(session, refund, failure, now=now),
    )
    if failure is not None:
        if raise_refused and not failure.transient:
            raise failure.error
        return await get_refund(session, refund.id)
    refund = await get_refund(session, refund.id)
    if refund.status is RefundStatus.succeeded:  # a pending refund may still fail
        await _execute_reversal_of(session, gateway, refund.id, now=now)
    return await get_refund(session, refund.id)


async def _record_failure(
    session: AsyncSession, refund: Refund, failure: Failure, *, now: datetime
) -> None:
    values = failure.values(refund.attempts + 1, now)
    if failure.transient:  # may have been made: retry with the same key
        await transition_refund(session, refund.id, RefundStatus.pending, values=values)
        return
    # Refused: nothing was refunded; the reservation is released.
    exc = failure.error
    await transition_refund(
        session,
        refund.id,
        RefundStatus.failed,
        values={
            **values,
            "failure_reason": str(exc.extra.get("stripe_code") or exc.code)[:255],
            "next_attempt_at": None,
        },
    )
    await cancel_reversal_of(session, refund.id, "the refund was refused")
    await reopen_request(session, refund)


async def _execute_reversal_of(
    session: AsyncSession, gateway: StripeGateway, refund_id: uuid.UUID, *, now: datetime
) -> None:
    reversal_id = await session.scalar(
        select(TransferReversal.id).where(
            TransferReversal.refund_id == refund_id, TransferReversal.status.in_(reversals.DUE)
        )
    )
    await session.commit()
    if reversal_id is not None:
        await reversals.execute_reversal(session, gateway, reversal_id, now=now)
