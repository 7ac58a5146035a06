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
   platform refund, then the reversal (`POST /v1/transfers/{id}/reversals`, key
   `refund:<id>:reversal`). A separate charge not released yet needs no reversal: the release
   transfers `vendor_amount` minus the refunded vendor shares.
3. Record Stripe's answer (`apply_refund_object`, also used by the refund webhooks). The
   payment's and order's `amount_refunded`, the order's status and the ledger change when the
   refund succeeds, once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.config import ChargeType, Settings
from marketplace_api.errors import ProblemError
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MovementKind
from marketplace_api.money import allocate
from marketplace_api.orders.exceptions import OrderNotFound
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.orders.state import transition_orders
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.stripe_gateway import StripeGateway
from marketplace_api.refunds.exceptions import (
    NothingToRefund,
    OrderNotRefundable,
    OrderRequired,
    PaymentNotFound,
    RefundExceedsRemainder,
)
from marketplace_api.refunds.models import (
    Refund,
    RefundOrigin,
    RefundReason,
    RefundRequest,
    RefundRequestStatus,
    RefundStatus,
)
from marketplace_api.refunds.schemas import PaymentRefundCreate, RefundCreate
from marketplace_api.refunds.state import FROM_STRIPE, transition_refund
from marketplace_api.transfers import attempts
from marketplace_api.transfers import service as transfers
from marketplace_api.transfers.exceptions import OrderDisputed
from marketplace_api.transfers.models import ReversalStatus, TransferReversal, TransferStatus
from marketplace_api.transfers.queries import (
    fresh_payment,
    has_open_dispute,
    lock_order,
    refund_totals,
    transfer_of_order,
)
from marketplace_api.transfers.state import transition_reversal

logger = logging.getLogger(__name__)

REFUNDABLE_ORDER_STATUSES = (OrderStatus.paid, OrderStatus.partially_refunded)


def split_refund(order: Order, already_refunded: int, amount: int) -> tuple[int, int]:
    """(vendor share, fee share) of refunding `amount` after `already_refunded`: the difference
    of the order's exact split of the cumulative totals, so no minor unit is ever lost."""
    weights = [order.vendor_amount, order.platform_fee]
    before = allocate(already_refunded, weights)[0]
    after = allocate(already_refunded + amount, weights)[0]
    return after - before, amount - (after - before)


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
) -> Refund:
    """Reserve, then make the refund. `vendor_user_id` limits it to that vendor's orders (404)."""
    await session.commit()
    refund = await _reserve(
        session,
        settings,
        order_id,
        data,
        origin=origin,
        actor_id=actor_id,
        now=now,
        vendor_user_id=vendor_user_id,
    )
    return await execute_refund(session, gateway, refund.id, now=now, raise_refused=True)


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
) -> Refund:
    order = await lock_order(session, order_id)
    if order is None:
        raise OrderNotFound()
    if vendor_user_id is not None:
        from marketplace_api.fulfilment.service import vendor_id_of

        if order.vendor_id != await vendor_id_of(session, vendor_user_id):
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
    vendor_share, fee_share = split_refund(order, reserved, amount)
    separate = payment.charge_type is ChargeType.separate
    refund_fee = None if separate else settings.refund_application_fee
    refund = Refund(
        id=uuid.uuid4(),
        order_id=order.id,
        payment_id=payment.id,
        vendor_id=order.vendor_id,
        amount=amount,
        currency=order.currency,
        vendor_share=vendor_share,
        fee_share=fee_share,
        fee_refunded=fee_share if (separate or refund_fee) else 0,
        refund_application_fee=refund_fee,
        reason=data.reason,
        note=data.note,
        origin=origin,
        created_by_id=actor_id,
        status=RefundStatus.pending,
    )
    request = (
        await session.execute(
            select(RefundRequest).where(
                RefundRequest.order_id == order.id,
                RefundRequest.status == RefundRequestStatus.open,
            )
        )
    ).scalar_one_or_none()
    if request is not None:
        request.status = RefundRequestStatus.approved
        request.resolved_at = now
        request.resolution_note = f"refunded {amount} {order.currency}"
        refund.refund_request_id = request.id
    session.add(refund)
    await session.flush()
    if separate and vendor_share > 0:
        transfer = await transfer_of_order(session, order.id)
        if transfer is not None and transfer.status is not TransferStatus.skipped:
            session.add(
                TransferReversal(
                    transfer_id=transfer.id,
                    order_id=order.id,
                    refund_id=refund.id,
                    amount=vendor_share,
                    currency=order.currency,
                )
            )
    await session.commit()
    logger.info(
        "refund reserved",
        extra={"refund_id": str(refund.id), "order_id": str(order.id), "amount": amount},
    )
    return refund


async def _get_refund(session: AsyncSession, refund_id: uuid.UUID) -> Refund:
    result = await session.execute(
        select(Refund).where(Refund.id == refund_id).execution_options(populate_existing=True)
    )
    return result.scalar_one()


async def execute_refund(
    session: AsyncSession,
    gateway: StripeGateway,
    refund_id: uuid.UUID,
    *,
    now: datetime,
    raise_refused: bool = False,
) -> Refund:
    """Make the Stripe call of a reserved refund (if nobody else is making it right now), record
    the answer, then make its transfer reversal if it has one."""
    claimed = await session.execute(
        update(Refund)
        .where(
            Refund.id == refund_id,
            Refund.status == RefundStatus.pending,
            Refund.stripe_refund_id.is_(None),
            or_(Refund.next_attempt_at.is_(None), Refund.next_attempt_at <= now),
        )
        .values(next_attempt_at=now + attempts.LEASE)
        .returning(Refund.id)
        .execution_options(synchronize_session=False)
    )
    is_claimed = claimed.first() is not None
    refund = await _get_refund(session, refund_id)
    payment = await fresh_payment(session, refund.payment_id)
    await session.commit()
    if not is_claimed:
        return refund
    try:
        stripe_refund = await gateway.create_refund(
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
            stripe_account=(
                payment.stripe_account_id if payment.charge_type is ChargeType.direct else None
            ),
        )
    except ProblemError as exc:
        await _record_call_failure(session, refund, exc, now=now)
        if raise_refused and not attempts.is_transient(exc):
            raise
        return await _get_refund(session, refund.id)
    await apply_refund_object(session, stripe_refund, observed_at=now)
    await session.commit()
    refund = await _get_refund(session, refund.id)
    if refund.status in (RefundStatus.pending, RefundStatus.succeeded):
        await _execute_reversal_of(session, gateway, refund.id, now=now)
    return await _get_refund(session, refund.id)


async def _record_call_failure(
    session: AsyncSession, refund: Refund, exc: ProblemError, *, now: datetime
) -> None:
    tries = refund.attempts + 1
    logger.warning("stripe refund failed", extra={"refund_id": str(refund.id), "error": exc.code})
    if attempts.is_transient(exc):  # may have been made: retry with the same key
        await transition_refund(
            session,
            refund.id,
            RefundStatus.pending,
            values={
                "attempts": tries,
                "last_error": attempts.describe(exc),
                "next_attempt_at": attempts.next_attempt(now, tries),
            },
        )
    else:  # refused: nothing was refunded; the reservation is released
        await transition_refund(
            session,
            refund.id,
            RefundStatus.failed,
            values={
                "attempts": tries,
                "last_error": attempts.describe(exc),
                "failure_reason": str(exc.extra.get("stripe_code") or exc.code)[:255],
                "next_attempt_at": None,
            },
        )
        await _cancel_reversal_of(session, refund.id, "the refund was refused")
        await _reopen_request(session, refund)
    await session.commit()


async def _reopen_request(session: AsyncSession, refund: Refund) -> None:
    if refund.refund_request_id is not None:
        await session.execute(
            update(RefundRequest)
            .where(
                RefundRequest.id == refund.refund_request_id,
                RefundRequest.status == RefundRequestStatus.approved,
            )
            .values(status=RefundRequestStatus.open, resolved_at=None, resolution_note=None)
        )


async def _cancel_reversal_of(session: AsyncSession, refund_id: uuid.UUID, why: str) -> None:
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


async def _execute_reversal_of(
    session: AsyncSession, gateway: StripeGateway, refund_id: uuid.UUID, *, now: datetime
) -> None:
    reversal_id = (
        await session.execute(
            select(TransferReversal.id).where(
                TransferReversal.refund_id == refund_id,
                TransferReversal.status.in_((ReversalStatus.pending, ReversalStatus.failed)),
            )
        )
    ).scalar_one_or_none()
    await session.commit()
    if reversal_id is not None:
        await transfers.execute_reversal(session, gateway, reversal_id, now=now)


async def refund_payment(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    payment_id: uuid.UUID,
    data: PaymentRefundCreate,
    *,
    actor_id: uuid.UUID,
    now: datetime,
) -> list[Refund]:
    """Admin refund of a payment: the named order, the only order, or (no amount) every order
    with something left to refund, each in full."""
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
    await session.commit()
    if data.order_id is not None:
        if data.order_id not in {o.id for o in orders}:
            raise OrderNotFound("The order is not part of this payment.")
        targets = [data.order_id]
    elif len(orders) == 1:
        targets = [orders[0].id]
    elif data.amount is None:
        targets = [o.id for o in orders if o.amount > o.amount_refunded]
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
        )
        for order_id in targets
    ]


# --- Stripe's view of a refund (create answer, refund.* and charge.refunded webhooks) ----------


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


async def _find_refund(session: AsyncSession, obj: dict[str, Any]) -> tuple[Refund | None, bool]:
    """Our refund for a Stripe refund (locked), and whether the refund names one of ours."""
    ours = _uuid((obj.get("metadata") or {}).get("refund_id"))
    conditions = []
    if ours is not None:
        conditions.append(Refund.id == ours)
    if obj.get("id"):
        conditions.append(Refund.stripe_refund_id == str(obj["id"]))
    if not conditions:
        return None, False
    result = await session.execute(
        select(Refund)
        .where(or_(*conditions))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalars().first(), ours is not None


async def apply_refund_object(
    session: AsyncSession, obj: dict[str, Any], *, observed_at: datetime
) -> Refund | None:
    """Bring our refund to what Stripe's refund object says, through the state machine.

    A refund naming a row we do not have yet raises `RetryLater`; a refund made outside the API
    on a single-order payment of ours is adopted (origin `stripe`); anything else is not ours
    (None). Never commits, never calls Stripe.
    """
    from marketplace_api.webhooks.dispatch import RetryLater

    refund, ours = await _find_refund(session, obj)
    if refund is None:
        if ours:
            raise RetryLater(f"refund for {obj.get('id')} is not committed yet")
        refund = await _adopt_external_refund(session, obj)
        if refund is None:
            return None
    stripe_id = str(obj.get("id") or "") or None
    if refund.stripe_refund_id is None and stripe_id:
        refund.stripe_refund_id = stripe_id
    target = FROM_STRIPE.get(str(obj.get("status") or ""))
    if target is None or target is RefundStatus.pending:
        await session.flush()
        return refund
    values: dict[str, Any] = {"next_attempt_at": None, "last_error": None}
    if target is RefundStatus.succeeded:
        values["succeeded_at"] = observed_at
    else:
        values["failure_reason"] = str(obj.get("failure_reason") or obj.get("status"))[:255]
    await session.flush()
    if await transition_refund(session, refund.id, target, values=values):
        refund = await _get_refund(session, refund.id)
        if target is RefundStatus.succeeded:
            await _on_succeeded(session, refund, obj, observed_at=observed_at)
        else:
            await _cancel_reversal_of(session, refund.id, f"the refund {target.value}")
            await _reopen_request(session, refund)
    elif refund.status is RefundStatus.succeeded and target is not RefundStatus.succeeded:
        logger.error(
            "a succeeded refund is now reported %s: check it in Stripe",
            target.value,
            extra={"refund_id": str(refund.id), "stripe_refund_id": stripe_id},
        )
    await session.flush()
    return await _get_refund(session, refund.id)


async def _on_succeeded(
    session: AsyncSession, refund: Refund, obj: dict[str, Any], *, observed_at: datetime
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
    stripe_id = str(refund.stripe_refund_id or obj.get("id"))
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
            reversal_id = obj.get("transfer_reversal")
            await ledger.record(
                session,
                kind=MovementKind.transfer_reversal,
                amount=-taken_back,
                stripe_id=str(reversal_id) if isinstance(reversal_id, str) else stripe_id,
                details={"refund_id": str(refund.id), "charge_type": payment.charge_type.value},
                **common,
            )


async def _adopt_external_refund(session: AsyncSession, obj: dict[str, Any]) -> Refund | None:
    """A refund made in the Stripe dashboard on one of our single-order payments: recorded so
    amounts and the ledger stay true (no transfer reversal is made for it)."""
    intent_id, charge_id, amount = obj.get("payment_intent"), obj.get("charge"), obj.get("amount")
    if not isinstance(amount, int) or amount <= 0 or not (intent_id or charge_id):
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
    orders = (
        (await session.execute(select(Order).where(Order.payment_id == payment.id))).scalars().all()
    )
    if len(orders) != 1:
        logger.error(
            "refund made outside the API on a multi-vendor payment: record it by hand",
            extra={"payment_id": str(payment.id), "stripe_refund_id": obj.get("id")},
        )
        return None
    order = await lock_order(session, orders[0].id)
    if order is None:  # pragma: no cover
        return None
    reserved, _ = await refund_totals(session, order.id)
    amount = min(amount, order.amount - reserved)
    if amount <= 0:
        return None
    vendor_share, fee_share = split_refund(order, reserved, amount)
    reason = obj.get("reason")
    refund = Refund(
        id=uuid.uuid4(),
        order_id=order.id,
        payment_id=payment.id,
        vendor_id=order.vendor_id,
        amount=amount,
        currency=order.currency,
        vendor_share=vendor_share,
        fee_share=fee_share,
        fee_refunded=fee_share,
        reason=RefundReason(str(reason))
        if reason in RefundReason.__members__
        else RefundReason.requested_by_customer,
        origin=RefundOrigin.stripe,
        status=RefundStatus.pending,
        stripe_refund_id=str(obj.get("id")),
    )
    session.add(refund)
    await session.flush()
    return refund


# --- job -----------------------------------------------------------------------------------------


async def retry_failed_refunds(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    *,
    now: datetime,
    settings: Settings | None = None,
    limit: int = 200,
) -> int:
    """Refunds whose Stripe call did not complete (timeout, 5xx, rate limit, a crash after the
    reservation) are retried with the same key `refund:<id>`; then transfer reversals that are
    pending or were refused (refunds' and lost disputes'). Refunds Stripe refused or reported
    failed stay failed: their reservation is released and a new refund can be made.
    Returns how many rows were attempted."""
    from marketplace_api.config import get_settings

    settings = settings or get_settings()
    async with sessionmaker() as session:
        refund_ids = (
            (
                await session.execute(
                    select(Refund.id)
                    .where(
                        Refund.status == RefundStatus.pending,
                        Refund.stripe_refund_id.is_(None),
                        or_(
                            Refund.next_attempt_at <= now,
                            Refund.next_attempt_at.is_(None)
                            & (Refund.created_at <= now - attempts.LEASE),
                        ),
                    )
                    .order_by(Refund.created_at, Refund.id)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
        reversal_ids = (
            (
                await session.execute(
                    select(TransferReversal.id)
                    .where(
                        TransferReversal.status.in_(
                            (ReversalStatus.pending, ReversalStatus.failed)
                        ),
                        or_(
                            TransferReversal.next_attempt_at.is_(None),
                            TransferReversal.next_attempt_at <= now,
                        ),
                    )
                    .order_by(TransferReversal.created_at, TransferReversal.id)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
        await session.commit()
        for refund_id in refund_ids:
            await execute_refund(session, gateway, refund_id, now=now)
        for reversal_id in reversal_ids:
            await transfers.execute_reversal(
                session, gateway, reversal_id, now=now, settings=settings
            )
    return len(refund_ids) + len(reversal_ids)
