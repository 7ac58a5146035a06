"""Stripe's view of a refund applied to ours (the create answer, `refund.*` and
`charge.refunded` webhooks), and the helpers the refund flow shares with it.

Never commits, never calls Stripe.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.integrations.stripe.objects import Refund as StripeRefund
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MovementKind
from marketplace_api.money import allocate
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.orders.queries import lock_order, orders_of_payment
from marketplace_api.orders.state import transition_orders
from marketplace_api.payments.models import Payment
from marketplace_api.payments.queries import charge_account, fresh_payment, payment_account
from marketplace_api.refunds import failures
from marketplace_api.refunds.models import (
    Refund,
    RefundOrigin,
    RefundReason,
    RefundRequest,
    RefundRequestStatus,
    RefundStatus,
)
from marketplace_api.refunds.notices import notify_refund_issued
from marketplace_api.refunds.queries import refund_totals
from marketplace_api.refunds.state import FROM_STRIPE, fail_after_success, transition_refund
from marketplace_api.transfers.models import ReversalStatus, TransferReversal
from marketplace_api.transfers.state import transition_reversal
from marketplace_api.webhooks.binding import Source, account_of, metadata_id, verify
from marketplace_api.webhooks.dispatch import RetryLater

logger = logging.getLogger(__name__)


def split_refund(order: Order, already_refunded: int, amount: int) -> tuple[int, int]:
    """(vendor share, fee share) of refunding `amount` after `already_refunded`: the difference
    of the order's exact split of the cumulative totals, so no minor unit is ever lost."""
    weights = [order.vendor_amount, order.platform_fee]
    before = allocate(already_refunded, weights)[0]
    after = allocate(already_refunded + amount, weights)[0]
    return after - before, amount - (after - before)


def new_refund(
    order: Order,
    payment_id: uuid.UUID,
    already_refunded: int,
    amount: int,
    *,
    fee_refunded: bool = True,
    **fields: Any,
) -> Refund:
    """A pending refund of `amount` of `order`, shared between vendor and fee (`split_refund`);
    `fee_refunded=False` when the platform keeps its fee share (destination/direct charges with
    no application-fee refund)."""
    vendor_share, fee_share = split_refund(order, already_refunded, amount)
    return Refund(
        id=uuid.uuid4(),
        order_id=order.id,
        payment_id=payment_id,
        vendor_id=order.vendor_id,
        amount=amount,
        currency=order.currency,
        vendor_share=vendor_share,
        fee_share=fee_share,
        fee_refunded=fee_share if fee_refunded else 0,
        status=RefundStatus.pending,
        **fields,
    )


async def get_refund(session: AsyncSession, refund_id: uuid.UUID) -> Refund:
    result = await session.execute(
        select(Refund).where(Refund.id == refund_id).execution_options(populate_existing=True)
    )
    return result.scalar_one()


async def reopen_request(session: AsyncSession, refund: Refund) -> None:
    if refund.refund_request_id is not None:
        await session.execute(
            update(RefundRequest)
            .where(
                RefundRequest.id == refund.refund_request_id,
                RefundRequest.status == RefundRequestStatus.approved,
            )
            .values(status=RefundRequestStatus.open, resolved_at=None, resolution_note=None)
        )


async def cancel_reversal_of(session: AsyncSession, refund_id: uuid.UUID, why: str) -> None:
    reversal_id = (
        await session.execute(
            select(TransferReversal.id).where(TransferReversal.refund_id == refund_id)
        )
    ).scalar_one_or_none()
    if reversal_id is not None:
        await transition_reversal(
            session,
            reversal_id,
            ReversalStatus.canceled,
            values={"last_error": why, "next_attempt_at": None},
        )


# --- Stripe's view of a refund (create answer, refund.* and charge.refunded webhooks) ----------


async def _find_refund(
    session: AsyncSession, obj: StripeRefund, source: Source | None
) -> tuple[Refund | None, bool]:
    """Our refund for a Stripe refund (locked), and whether the refund names one of ours.

    Bound before anything moves (`Mismatch` otherwise): the Stripe refund id we stored, its
    amount and currency, the connected account of its payment and that payment's charge /
    PaymentIntent. The payment's columns come with the refund, in the same statement."""
    ours = metadata_id(obj.metadata, "refund_id")
    conditions = [Refund.stripe_refund_id == obj.id]
    if ours is not None:
        conditions.append(Refund.id == ours)
    row = (
        await session.execute(
            select(
                Refund,
                Payment.charge_type,
                Payment.stripe_account_id,
                Payment.stripe_charge_id,
                Payment.stripe_payment_intent_id,
            )
            .join(Payment, Payment.id == Refund.payment_id)
            .where(or_(*conditions))
            .with_for_update(of=Refund)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        return None, ours is not None
    refund, charge_type, account, charge_id, intent_id = row
    verify(
        f"refund {refund.id}",
        obj,
        ids=[refund.stripe_refund_id],
        amount=refund.amount,
        currency=refund.currency,
        account=account_of(source),
        expected_account=charge_account(charge_type, account),
        references={"charge": charge_id, "payment_intent": intent_id},
    )
    return refund, True


async def apply_refund_object(
    session: AsyncSession,
    obj: StripeRefund,
    *,
    observed_at: datetime,
    source: Source | None = None,
) -> Refund | None:
    """Bring our refund to what Stripe's refund object says, through the state machine.

    A refund naming a row we do not have yet raises `RetryLater`; a refund made outside the API
    on a single-order payment of ours is adopted (origin `stripe`); anything else is not ours
    (None). Never commits, never calls Stripe. The refund must be bound to the one we recorded
    (`_find_refund`); `source` is the event's, None for our own create answer.
    """
    refund, ours = await _find_refund(session, obj, source)
    if refund is None:
        if ours:
            raise RetryLater(f"refund for {obj.id} is not committed yet")
        refund = await _adopt_external_refund(session, obj, source)
        if refund is None:
            return None
    stripe_id = obj.id or None
    if refund.stripe_refund_id is None and stripe_id:
        refund.stripe_refund_id = stripe_id
    target = FROM_STRIPE.get(obj.status or "")
    if target is None or target is RefundStatus.pending:
        await session.flush()
        return refund
    values: dict[str, Any] = {"next_attempt_at": None, "last_error": None}
    if target is RefundStatus.succeeded:
        values["succeeded_at"] = observed_at
    else:
        values["failure_reason"] = str(obj.failure_reason or obj.status)[:255]
    await session.flush()
    if await transition_refund(session, refund.id, target, values=values):
        refund = await get_refund(session, refund.id)
        if target is RefundStatus.succeeded:
            await _on_succeeded(session, refund, obj, observed_at=observed_at)
        else:
            await cancel_reversal_of(session, refund.id, f"the refund {target.value}")
            await reopen_request(session, refund)
    elif refund.status is RefundStatus.succeeded and target is RefundStatus.failed:
        if await fail_after_success(session, refund.id, values=values):
            refund = await get_refund(session, refund.id)
            payment = await fresh_payment(session, refund.payment_id)
            await failures.undo_success(session, refund, payment, observed_at=observed_at)
            # A separate charge's reversal not made yet is not needed any more.
            await cancel_reversal_of(session, refund.id, "the refund failed after succeeding")
            await reopen_request(session, refund)
    elif refund.status is RefundStatus.succeeded and target is not RefundStatus.succeeded:
        logger.error(
            "a succeeded refund is now reported %s: check it in Stripe",
            target.value,
            extra={"refund_id": str(refund.id), "stripe_refund_id": stripe_id},
        )
    await session.flush()
    return await get_refund(session, refund.id)


async def _on_succeeded(
    session: AsyncSession, refund: Refund, obj: StripeRefund, *, observed_at: datetime
) -> None:
    """The money is on its way back: amounts, the order's status and the ledger, once (the
    caller's conditional status change is the guard)."""
    payment = await fresh_payment(session, refund.payment_id)
    await session.execute(
        update(Payment)
        .where(Payment.id == payment.id)
        .values(amount_refunded=Payment.amount_refunded + refund.amount)
        .execution_options(synchronize_session=False)
    )
    row = (
        await session.execute(
            update(Order)
            .where(Order.id == refund.order_id)
            .values(amount_refunded=Order.amount_refunded + refund.amount)
            .returning(Order.amount, Order.amount_refunded, Order.status, Order.vendor_id)
            .execution_options(synchronize_session=False)
        )
    ).one()
    amount, refunded, status, vendor_id = row
    if status is not OrderStatus.disputed:
        to = OrderStatus.refunded if refunded >= amount else OrderStatus.partially_refunded
        await transition_orders(session, to, now=observed_at, order_ids=[refund.order_id])
    await notify_refund_issued(session, refund.id)
    stripe_id = refund.stripe_refund_id or obj.id
    common: dict[str, Any] = {
        "currency": refund.currency,
        "occurred_at": observed_at,
        "payment_id": refund.payment_id,
        "order_id": refund.order_id,
        "vendor_id": vendor_id,
    }
    await ledger.record(
        session,
        kind=MovementKind.refund,
        amount=-refund.amount,
        stripe_id=stripe_id,
        details={"refund_id": str(refund.id), "reason": refund.reason.value},
        **common,
    )
    if refund.fee_refunded:
        await ledger.record(
            session,
            kind=MovementKind.refund_fee_share,
            amount=-refund.fee_refunded,
            stripe_id=stripe_id,
            **common,
        )
    if payment.charge_type is not ChargeType.separate:
        # Destination: `reverse_transfer` took it back (its own trr_ id); direct: the refund
        # came out of the vendor's own balance.
        taken_back = refund.amount - refund.fee_refunded
        if taken_back:
            await ledger.record(
                session,
                kind=MovementKind.transfer_reversal,
                amount=-taken_back,
                stripe_id=obj.transfer_reversal or stripe_id,
                details={"refund_id": str(refund.id), "charge_type": payment.charge_type.value},
                **common,
            )


async def _adopt_external_refund(
    session: AsyncSession, obj: StripeRefund, source: Source | None
) -> Refund | None:
    """A refund made in the Stripe dashboard on one of our single-order payments: recorded so
    amounts and the ledger stay true (no transfer reversal is made for it)."""
    intent_id, charge_id, amount = obj.payment_intent, obj.charge, obj.amount
    if amount <= 0 or not (intent_id or charge_id):
        return None
    payment = (
        await session.execute(
            select(Payment).where(
                or_(
                    Payment.stripe_payment_intent_id == intent_id,
                    Payment.stripe_charge_id == charge_id,
                )
            )
        )
    ).scalar_one_or_none()
    if payment is None:
        return None
    verify(
        f"payment {payment.id}",
        obj,
        currency=payment.currency,
        account=account_of(source),
        expected_account=payment_account(payment),
        references={
            "charge": payment.stripe_charge_id,
            "payment_intent": payment.stripe_payment_intent_id,
        },
    )
    orders = await orders_of_payment(session, payment.id)
    if len(orders) != 1:
        logger.error(
            "refund made outside the API on a multi-vendor payment: record it by hand",
            extra={"payment_id": str(payment.id), "stripe_refund_id": obj.id},
        )
        return None
    order = await lock_order(session, orders[0].id)
    if order is None:  # pragma: no cover
        return None
    reserved, _ = await refund_totals(session, order.id)
    amount = min(amount, order.amount - reserved)
    if amount <= 0:
        return None
    reason = obj.reason
    refund = new_refund(
        order,
        payment.id,
        reserved,
        amount,
        reason=RefundReason(reason)
        if reason is not None and reason in RefundReason.__members__
        else RefundReason.requested_by_customer,
        origin=RefundOrigin.stripe,
        stripe_refund_id=obj.id,
    )
    session.add(refund)
    await session.flush()
    return refund
