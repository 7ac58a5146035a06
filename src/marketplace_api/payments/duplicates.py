"""A second successful PaymentIntent for one payment, refunded whole, once.

A payment can be paid twice: its Checkout Session's PaymentIntent and its Payment Element's
both succeed (or one succeeds after the payment was released). The one that counts stays; the
other is a duplicate (it is one of ours: bound by the ids stored on the payment).

1. `record_duplicate` (the webhook's transaction): `INSERT … ON CONFLICT (stripe_payment_intent_id)
   DO NOTHING` — however often the success is delivered, one row; the first one records the
   duplicate charge in the ledger and alerts the operator.
2. `refund_due_duplicates` (the refund retry job): claims the row (a lease), commits, calls
   `POST /v1/refunds` for the whole PaymentIntent outside any transaction with the key
   `duplicate_payment:<pi_…>:refund` (reverse_transfer / refund_application_fee / Stripe-Account
   as the charge type needs), then records the answer.
3. `apply_duplicate_refund` (the create answer, and `refund.*` webhooks naming the row in
   metadata): pending → succeeded writes the ledger's refund rows and tells the buyer and the
   operator, once; pending → failed alerts the operator.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api import stripe_attempts as attempts
from marketplace_api.config import ChargeType
from marketplace_api.errors import ProblemError
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.integrations.stripe.objects import PaymentIntent
from marketplace_api.integrations.stripe.objects import Refund as StripeRefund
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MovementKind
from marketplace_api.notifications.notify import notify_operator
from marketplace_api.orders.models import Order
from marketplace_api.payments.models import DuplicatePaymentRefund, DuplicateRefundStatus, Payment
from marketplace_api.payments.notices import notify_duplicate_payment_refunded
from marketplace_api.payments.queries import charge_account, payment_account
from marketplace_api.webhooks.binding import Source, account_of, metadata_id, verify

logger = logging.getLogger(__name__)

D = DuplicateRefundStatus
# The metadata key naming the row a duplicate's refund belongs to.
DUPLICATE_REFUND_KEY = "duplicate_refund_id"


def _fee_collected(payment: Payment) -> int:
    """The application fee a duplicate collected too (separate charges carry none)."""
    return 0 if payment.charge_type is ChargeType.separate else payment.platform_fee


async def _single_vendor(session: AsyncSession, payment: Payment) -> uuid.UUID | None:
    vendors = (
        await session.execute(select(Order.vendor_id).where(Order.payment_id == payment.id))
    ).scalars()
    found = set(vendors)
    return found.pop() if len(found) == 1 else None


async def record_duplicate(
    session: AsyncSession, payment: Payment, intent: PaymentIntent, *, observed_at: datetime
) -> bool:
    """Record `intent` (bound to `payment`, succeeded, not the one that counts) to be refunded.
    True when this call recorded it. Never commits, never calls Stripe."""
    intent_id, charge_id = intent.id, intent.latest_charge
    fee = _fee_collected(payment)
    inserted = (
        await session.execute(
            insert(DuplicatePaymentRefund)
            .values(
                id=uuid.uuid4(),
                payment_id=payment.id,
                stripe_payment_intent_id=intent_id,
                stripe_charge_id=charge_id,
                amount=payment.amount,
                currency=payment.currency,
                platform_fee=fee,
                status=D.pending,
                next_attempt_at=observed_at,
            )
            .on_conflict_do_nothing(
                index_elements=[DuplicatePaymentRefund.stripe_payment_intent_id]
            )
            .returning(DuplicatePaymentRefund.id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        return False
    vendor_id = await _single_vendor(session, payment)
    common: dict[str, Any] = {
        "currency": payment.currency,
        "stripe_id": charge_id or intent_id,
        "occurred_at": observed_at,
        "payment_id": payment.id,
        "vendor_id": vendor_id,
        "details": {"duplicate_payment_intent": intent_id},
    }
    rows = [ledger.movement(kind=MovementKind.charge, amount=payment.amount, **common)]
    if payment.charge_type is not ChargeType.separate:
        # The duplicate paid the vendor (destination transfer, or the vendor's own balance) and
        # the platform its fee, like the payment itself.
        rows.append(ledger.movement(kind=MovementKind.platform_fee, amount=fee, **common))
        rows.append(
            ledger.movement(kind=MovementKind.transfer, amount=payment.amount - fee, **common)
        )
    await ledger.record_many(session, rows)
    logger.error(
        "second PaymentIntent succeeded for one payment: refunding it",
        extra={"payment_id": str(payment.id), "payment_intent": intent_id},
    )
    await notify_operator(
        session,
        f"duplicate_payment:{intent_id}",
        "A payment was paid twice: the duplicate is being refunded",
        "A second PaymentIntent succeeded for one payment. It is refunded in full "
        "automatically; you will get another message if the refund fails.",
        {
            "payment_id": payment.id,
            "payment_intent": intent_id,
            "kept_payment_intent": payment.stripe_payment_intent_id,
            "amount": payment.amount,
            "currency": payment.currency,
        },
    )
    return True


# --- the Stripe call (retry job) ----------------------------------------------------------------


async def refund_due_duplicates(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    *,
    now: datetime,
    limit: int = 200,
) -> int:
    """Refund the duplicates that are due (new, or their last call did not complete)."""
    async with sessionmaker() as session:
        due = (
            (
                await session.execute(
                    select(DuplicatePaymentRefund.id)
                    .where(
                        DuplicatePaymentRefund.status == D.pending,
                        DuplicatePaymentRefund.stripe_refund_id.is_(None),
                        or_(
                            DuplicatePaymentRefund.next_attempt_at.is_(None),
                            DuplicatePaymentRefund.next_attempt_at <= now,
                        ),
                    )
                    .order_by(DuplicatePaymentRefund.created_at, DuplicatePaymentRefund.id)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
        await session.commit()
        for row_id in due:
            await execute_duplicate_refund(session, gateway, row_id, now=now)
    return len(due)


async def execute_duplicate_refund(
    session: AsyncSession, gateway: StripeGateway, row_id: uuid.UUID, *, now: datetime
) -> None:
    """Claim the row (a lease), commit, call Stripe with the row's key, record the answer."""
    claimed = (
        await session.execute(
            update(DuplicatePaymentRefund)
            .where(
                DuplicatePaymentRefund.id == row_id,
                DuplicatePaymentRefund.status == D.pending,
                DuplicatePaymentRefund.stripe_refund_id.is_(None),
                or_(
                    DuplicatePaymentRefund.next_attempt_at.is_(None),
                    DuplicatePaymentRefund.next_attempt_at <= now,
                ),
            )
            .values(next_attempt_at=now + attempts.LEASE)
            .returning(DuplicatePaymentRefund)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if claimed is None:
        await session.commit()
        return
    payment = (
        await session.execute(select(Payment).where(Payment.id == claimed.payment_id))
    ).scalar_one()
    row_id, key, tries = claimed.id, claimed.idempotency_key, claimed.attempts + 1
    intent_id, amount = claimed.stripe_payment_intent_id, claimed.amount
    charge_type, account = payment.charge_type, payment.stripe_account_id
    await session.commit()
    try:
        answer = await gateway.create_refund(
            payment_intent=intent_id,
            amount=amount,
            reason="duplicate",
            metadata={DUPLICATE_REFUND_KEY: str(row_id), "payment_id": str(payment.id)},
            idempotency_key=key,
            reverse_transfer=True if charge_type is ChargeType.destination else None,
            refund_application_fee=True if charge_type is not ChargeType.separate else None,
            stripe_account=charge_account(charge_type, account),
        )
    except ProblemError as exc:
        values: dict[str, Any] = {"attempts": tries, "last_error": attempts.describe(exc)}
        if attempts.is_transient(exc):  # may have been made: the same key again later
            values["next_attempt_at"] = attempts.next_attempt(now, tries)
            await session.execute(
                update(DuplicatePaymentRefund)
                .where(DuplicatePaymentRefund.id == row_id)
                .values(**values)
            )
        else:
            await _fail(session, row_id, str(exc.extra.get("stripe_code") or exc.code), values)
        await session.commit()
        return
    await apply_duplicate_refund(session, answer, observed_at=now)
    await session.commit()


# --- Stripe's answer and refund webhooks -------------------------------------------------------


def names_duplicate(obj: StripeRefund) -> bool:
    return bool(obj.metadata.get(DUPLICATE_REFUND_KEY))


async def apply_duplicate_refund(
    session: AsyncSession,
    obj: StripeRefund,
    *,
    observed_at: datetime,
    source: Source | None = None,
) -> DuplicatePaymentRefund | None:
    """Bring the duplicate's refund row to Stripe's refund object (bound: id, amount, currency,
    PaymentIntent and account). None when the refund is not one of these. Never commits."""
    ours = metadata_id(obj.metadata, DUPLICATE_REFUND_KEY)
    stripe_id = obj.id or None
    conditions = [DuplicatePaymentRefund.stripe_refund_id == obj.id]
    if ours is not None:
        conditions.append(DuplicatePaymentRefund.id == ours)
    found = (
        await session.execute(
            select(DuplicatePaymentRefund, Payment)
            .join(Payment, Payment.id == DuplicatePaymentRefund.payment_id)
            .where(or_(*conditions))
            .with_for_update(of=DuplicatePaymentRefund)
            .execution_options(populate_existing=True)
        )
    ).first()
    if found is None:
        return None
    row, payment = found
    verify(
        f"duplicate payment refund {row.id}",
        obj,
        ids=[row.stripe_refund_id],
        amount=row.amount,
        currency=row.currency,
        account=account_of(source),
        expected_account=payment_account(payment),
        references={"payment_intent": row.stripe_payment_intent_id},
    )
    if row.stripe_refund_id is None and stripe_id:
        row.stripe_refund_id = stripe_id
        await session.flush()
    status = obj.status or ""
    if status == "succeeded" and await _succeed(session, row.id, observed_at):
        await _record_refunded(session, row, payment, stripe_id or str(row.id), observed_at)
    elif status in ("failed", "canceled"):
        reason = obj.failure_reason or status
        await _fail(session, row.id, reason, {"next_attempt_at": None})
    return row


async def _succeed(session: AsyncSession, row_id: uuid.UUID, now: datetime) -> bool:
    moved = await session.execute(
        update(DuplicatePaymentRefund)
        .where(DuplicatePaymentRefund.id == row_id, DuplicatePaymentRefund.status == D.pending)
        .values(status=D.succeeded, succeeded_at=now, next_attempt_at=None, last_error=None)
        .returning(DuplicatePaymentRefund.id)
    )
    return moved.first() is not None


async def _record_refunded(
    session: AsyncSession,
    row: DuplicatePaymentRefund,
    payment: Payment,
    stripe_id: str,
    now: datetime,
) -> None:
    common: dict[str, Any] = {
        "currency": row.currency,
        "stripe_id": stripe_id,
        "occurred_at": now,
        "payment_id": row.payment_id,
        "vendor_id": await _single_vendor(session, payment),
        "details": {"duplicate_payment_intent": row.stripe_payment_intent_id},
    }
    rows = [ledger.movement(kind=MovementKind.refund, amount=-row.amount, **common)]
    if payment.charge_type is not ChargeType.separate:
        rows.append(
            ledger.movement(kind=MovementKind.refund_fee_share, amount=-row.platform_fee, **common)
        )
        rows.append(
            ledger.movement(
                kind=MovementKind.transfer_reversal,
                amount=-(row.amount - row.platform_fee),
                **common,
            )
        )
    await ledger.record_many(session, rows)
    await notify_duplicate_payment_refunded(session, row.id)
    await notify_operator(
        session,
        f"duplicate_payment:{row.stripe_payment_intent_id}:refunded",
        "A duplicate payment was refunded",
        "The second PaymentIntent of a payment was refunded in full.",
        {
            "payment_id": row.payment_id,
            "payment_intent": row.stripe_payment_intent_id,
            "stripe_refund_id": stripe_id,
            "amount": row.amount,
            "currency": row.currency,
        },
    )


async def _fail(
    session: AsyncSession, row_id: uuid.UUID, reason: str, values: dict[str, Any]
) -> None:
    moved = (
        await session.execute(
            update(DuplicatePaymentRefund)
            .where(DuplicatePaymentRefund.id == row_id, DuplicatePaymentRefund.status == D.pending)
            .values(status=D.failed, failure_reason=reason[:255], **values)
            .returning(DuplicatePaymentRefund)
        )
    ).scalar_one_or_none()
    if moved is None:
        return
    await notify_operator(
        session,
        f"duplicate_payment:{moved.stripe_payment_intent_id}:failed",
        "A duplicate payment could not be refunded",
        "The automatic refund of a second PaymentIntent failed: refund the buyer by hand.",
        {
            "payment_id": moved.payment_id,
            "payment_intent": moved.stripe_payment_intent_id,
            "amount": moved.amount,
            "currency": moved.currency,
            "reason": reason,
        },
    )
