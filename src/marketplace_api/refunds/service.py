"""Refunds of an order, by charge type, reserved before Stripe is called.

1. Under the order's row lock: what is left to refund is `order.amount` minus its pending and
   succeeded refunds; the new refund row (pending) reserves its amount, so two concurrent
   refunds can never exceed the order. Its vendor and fee shares are split exactly with
   `money.allocate`, cumulatively (the shares of all of an order's refunds add up to the
   order's own split of their total). For a separate charge whose vendor share was already
   released (a transfer row exists), a reversal row of the vendor share is written too. Commit.
2. `POST /v1/refunds`, idempotency key `refund:<id>`, metadata {refund_id, order_id,
   payment_id}: destination → `reverse_transfer=true` + `refund_application_fee`; direct → on
   the connected account (`Stripe-Account`) + `refund_application_fee`; separate → a plain
   platform refund, then — once the refund has succeeded, never before (a pending refund can
   still fail) — the reversal (`POST /v1/transfers/{id}/reversals`, key `refund:<id>:reversal`;
   made at once, or by the retry job after the `refund.updated` webhook). A separate charge
   not released yet needs no reversal: the release
   transfers `vendor_amount` minus the refunded vendor shares.
3. Record Stripe's answer (`apply_refund_object`, also used by the refund webhooks). The
   payment's and order's `amount_refunded`, the order's status and the ledger change when the
   refund succeeds, once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api import stripe_attempts
from marketplace_api.config import ChargeType, Settings
from marketplace_api.disputes.queries import has_open_dispute
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.orders.exceptions import OrderNotFound
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.orders.queries import lock_order
from marketplace_api.payments import duplicates
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.queries import fresh_payment
from marketplace_api.refunds import reversals
from marketplace_api.refunds.exceptions import (
    NothingToRefund,
    OrderNotRefundable,
    OrderRequired,
    PaymentNotFound,
    RefundExceedsRemainder,
)
from marketplace_api.refunds.execution import execute_refund
from marketplace_api.refunds.models import (
    Refund,
    RefundOrigin,
    RefundRequestStatus,
    RefundStatus,
)
from marketplace_api.refunds.queries import open_refund_request, refund_totals
from marketplace_api.refunds.schemas import PaymentRefundCreate, RefundCreate
from marketplace_api.refunds.sync import new_refund
from marketplace_api.transfers.exceptions import OrderDisputed
from marketplace_api.transfers.models import TransferReversal, TransferStatus
from marketplace_api.transfers.queries import transfer_of_order
from marketplace_api.vendors.queries import vendor_id_of

logger = logging.getLogger(__name__)

REFUNDABLE_ORDER_STATUSES = (OrderStatus.paid, OrderStatus.partially_refunded)


async def create_refund(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    order_id: uuid.UUID,
    data: RefundCreate,
    *,
    origin: RefundOrigin,
    actor_id: uuid.UUID | None,
    now: datetime,
    vendor_user_id: uuid.UUID | None = None,
    idempotency: IdempotencyContext | None = None,
) -> Refund:
    """Reserve, then make the refund. `vendor_user_id` limits it to that vendor's orders (404).

    With an API Idempotency-Key the reserved row is bound to the key in its own transaction; a
    retry of the key finds it and resumes it (the Stripe call, same key `refund:<id>`) instead of
    reserving a second refund."""
    await session.commit()
    resumed = await _bound_refund(session, idempotency, order_id)
    if resumed is not None:
        return await execute_refund(
            session, gateway, resumed, now=now, raise_refused=True, resume=True
        )
    refund = await _reserve(
        session,
        settings,
        order_id,
        data,
        origin=origin,
        actor_id=actor_id,
        now=now,
        vendor_user_id=vendor_user_id,
        idempotency=idempotency,
    )
    return await execute_refund(session, gateway, refund.id, now=now, raise_refused=True)


async def _bound_refund(
    session: AsyncSession, idempotency: IdempotencyContext | None, order_id: uuid.UUID
) -> uuid.UUID | None:
    """The refund of `order_id` an earlier attempt with the same Idempotency-Key reserved."""
    if idempotency is None or not idempotency.resource_ids:
        return None
    found = (
        await session.execute(
            select(Refund.id).where(
                Refund.id.in_(idempotency.resource_ids), Refund.order_id == order_id
            )
        )
    ).scalar_one_or_none()
    await session.commit()
    return found


async def _reserve(
    session: AsyncSession,
    settings: Settings,
    order_id: uuid.UUID,
    data: RefundCreate,
    *,
    origin: RefundOrigin,
    actor_id: uuid.UUID | None,
    now: datetime,
    vendor_user_id: uuid.UUID | None,
    idempotency: IdempotencyContext | None,
) -> Refund:
    order = await lock_order(session, order_id)
    if order is None:
        raise OrderNotFound()
    if vendor_user_id is not None and order.vendor_id != await vendor_id_of(
        session, vendor_user_id
    ):
        raise OrderNotFound()
    payment = await fresh_payment(session, order.payment_id)
    if payment.status is not PaymentStatus.succeeded:
        raise OrderNotRefundable("Only paid orders can be refunded; cancel an unpaid one instead.")
    if order.status is OrderStatus.disputed or await has_open_dispute(session, payment.id):
        raise OrderDisputed("A disputed charge cannot be refunded; answer the dispute instead.")
    reserved, _ = await refund_totals(session, order.id)
    remainder = order.amount - reserved
    if order.status not in REFUNDABLE_ORDER_STATUSES or remainder <= 0:
        raise NothingToRefund(f"The order is {order.status.value}; nothing is left to refund.")
    amount = data.amount if data.amount is not None else remainder
    if amount > remainder:
        raise RefundExceedsRemainder(
            f"At most {remainder} {order.currency} minor units are left to refund.",
            refundable=remainder,
        )
    separate = payment.charge_type is ChargeType.separate
    refund_fee = None if separate else settings.refund_application_fee
    refund = new_refund(
        order,
        payment.id,
        reserved,
        amount,
        fee_refunded=bool(separate or refund_fee),
        refund_application_fee=refund_fee,
        reason=data.reason,
        note=data.note,
        origin=origin,
        created_by_id=actor_id,
    )
    request = await open_refund_request(session, order.id)
    if request is not None:
        request.status = RefundRequestStatus.approved
        request.resolved_at = now
        request.resolution_note = f"refunded {amount} {order.currency}"
        refund.refund_request_id = request.id
    session.add(refund)
    await session.flush()
    if idempotency is not None:
        await idempotency.bind(session, refund.id)
    if separate and refund.vendor_share > 0:
        transfer = await transfer_of_order(session, order.id)
        if transfer is not None and transfer.status is not TransferStatus.skipped:
            session.add(
                TransferReversal(
                    transfer_id=transfer.id,
                    order_id=order.id,
                    refund_id=refund.id,
                    amount=refund.vendor_share,
                    currency=order.currency,
                )
            )
    await session.commit()
    logger.info(
        "refund reserved",
        extra={"refund_id": str(refund.id), "order_id": str(order.id), "amount": amount},
    )
    return refund


async def refund_payment(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    payment_id: uuid.UUID,
    data: PaymentRefundCreate,
    *,
    actor_id: uuid.UUID,
    now: datetime,
    idempotency: IdempotencyContext | None = None,
) -> list[Refund]:
    """Admin refund of a payment: the named order, the only order, or (no amount) every order
    with something left to refund, each in full. Each refund is bound to the Idempotency-Key as
    it is reserved: a retry resumes the ones reserved and reserves only the others."""
    payment = await session.get(Payment, payment_id)
    if payment is None:
        raise PaymentNotFound()
    orders = (
        (
            await session.execute(
                select(Order).where(Order.payment_id == payment.id).order_by(Order.id)
            )
        )
        .scalars()
        .all()
    )
    bound = idempotency.resource_ids if idempotency is not None else []
    bound_orders = (
        set(
            (await session.execute(select(Refund.order_id).where(Refund.id.in_(bound))))
            .scalars()
            .all()
        )
        if bound
        else set()
    )
    await session.commit()
    if data.order_id is not None:
        if data.order_id not in {o.id for o in orders}:
            raise OrderNotFound("The order is not part of this payment.")
        targets = [data.order_id]
    elif len(orders) == 1:
        targets = [orders[0].id]
    elif data.amount is None:
        # Orders refunded by an earlier attempt of this request still belong to its answer.
        targets = [o.id for o in orders if o.amount > o.amount_refunded or o.id in bound_orders]
    else:
        raise OrderRequired("This payment pays for several orders: pass `order_id`.")
    if not targets:
        raise NothingToRefund("Every order of this payment is refunded.")
    single = RefundCreate(amount=data.amount, reason=data.reason, note=data.note)
    return [
        await create_refund(
            session,
            gateway,
            settings,
            order_id,
            single,
            origin=RefundOrigin.admin,
            actor_id=actor_id,
            now=now,
            idempotency=idempotency,
        )
        for order_id in targets
    ]


# --- job -----------------------------------------------------------------------------------------


async def retry_failed_refunds(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    *,
    now: datetime,
    settings: Settings,
    limit: int = 200,
) -> int:
    """Refunds whose Stripe call did not complete (timeout, 5xx, rate limit, a crash after the
    reservation) are retried with the same key `refund:<id>`; then transfer reversals that are
    pending or were refused (refunds' and lost disputes'). Refunds Stripe refused or reported
    failed stay failed: their reservation is released and a new refund can be made.
    Returns how many rows were attempted."""
    async with sessionmaker() as session:
        refund_ids = list(
            await session.scalars(
                select(Refund.id)
                .where(
                    Refund.status == RefundStatus.pending,
                    Refund.stripe_refund_id.is_(None),
                    stripe_attempts.due_for_retry(Refund, now),
                )
                .order_by(Refund.created_at, Refund.id)
                .limit(limit)
            )
        )
        reversal_ids = list(
            await session.scalars(
                select(TransferReversal.id)
                .where(
                    TransferReversal.status.in_(reversals.DUE),
                    stripe_attempts.due(TransferReversal, now),
                )
                .order_by(TransferReversal.created_at, TransferReversal.id)
                .limit(limit)
            )
        )
        await session.commit()
        for refund_id in refund_ids:
            await execute_refund(session, gateway, refund_id, now=now)
        for reversal_id in reversal_ids:
            await reversals.execute_reversal(
                session, gateway, reversal_id, now=now, settings=settings
            )
    # Second PaymentIntents of one payment, refunded whole (`payments.duplicates`).
    made = await duplicates.refund_due_duplicates(sessionmaker, gateway, now=now, limit=limit)
    return len(refund_ids) + len(reversal_ids) + made
