"""Webhook handlers of payments: PaymentIntents and Checkout Sessions.

They run inside the webhook pipeline's transaction: change rows through the state machine only,
never commit, never call Stripe.

Checkout Sessions: the PaymentIntent events decide the payment's status (they carry the charge
and arrive for both Payment Element and Checkout payments, since `payment_intent_data.metadata`
names our payment). `checkout.session.completed` / `async_payment_succeeded` record the session's
PaymentIntent on the payment and mark it paid only when the session says `payment_status=paid`
(the charge id follows with `payment_intent.succeeded`). `checkout.session.expired` releases the
stock of a still unpaid payment when that session was its only way to pay (no Payment Element
PaymentIntent is open, which only the expiry job may cancel, calling Stripe).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.integrations.stripe.objects import CheckoutSession, PaymentIntent
from marketplace_api.payments.models import PAYABLE_STATUSES, Payment, PaymentStatus
from marketplace_api.payments.state import (
    apply_payment_intent,
    bind_payment_object,
    counting_intent,
    end_payment,
    lock_payment,
    mark_succeeded,
    transition_payment,
)
from marketplace_api.webhooks.binding import Mismatch, Source, metadata_id, our_id
from marketplace_api.webhooks.dispatch import EventContext, RetryLater, handles
from marketplace_api.webhooks.waiting import wake_events_waiting_on

logger = logging.getLogger(__name__)


@handles(
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.canceled",
)
async def on_payment_intent(session: AsyncSession, ctx: EventContext) -> None:
    await apply_payment_intent(
        session, ctx.parse(PaymentIntent), observed_at=ctx.created, source=Source(ctx.account)
    )


async def _bound_payment(
    session: AsyncSession, checkout: CheckoutSession, source: Source
) -> Payment | None:
    """The payment of a paid/failed Checkout Session, bound to it: the session id must be the
    one we recorded (or none is recorded yet and one was being created: the create answer was
    lost), and its amount, currency and account must be the payment's (`Mismatch` otherwise)."""
    payment = await _payment_for_session(session, checkout, source)
    if payment is None:
        return None
    if payment.checkout_session_id != checkout.id and not (
        payment.checkout_session_id is None and payment.checkout_session_seq > 0
    ):
        raise Mismatch(
            f"payment {payment.id}", "checkout session", payment.checkout_session_id, checkout.id
        )
    intent_id = checkout.payment_intent
    if (
        intent_id
        and payment.checkout_payment_intent_id not in (None, intent_id)
        and payment.checkout_session_id == checkout.id
    ):
        raise Mismatch(
            f"payment {payment.id}",
            "payment_intent",
            payment.checkout_payment_intent_id,
            intent_id,
        )
    return payment


async def _payment_for_session(
    session: AsyncSession, checkout: CheckoutSession, source: Source
) -> Payment | None:
    """By our metadata / client_reference_id first, then the session id, locked; its amount,
    currency and account must be the payment's. Raises RetryLater when the session names a
    payment that is not committed yet."""
    payment_id = metadata_id(checkout.metadata, "payment_id") or our_id(
        checkout.client_reference_id
    )
    if payment_id is not None:
        payment = await lock_payment(session, payment_id)
        if payment is None:
            raise RetryLater(f"payment {payment_id} of Checkout Session is not committed yet")
    else:
        found = await session.execute(
            select(Payment.id).where(Payment.checkout_session_id == checkout.id)
        )
        other = found.scalar_one_or_none()
        payment = await lock_payment(session, other) if other is not None else None
    if payment is not None:
        bind_payment_object(payment, checkout, source=source, amount_field="amount_total")
    return payment


async def _record_session_intent(
    session: AsyncSession, payment: Payment, intent_id: str | None
) -> None:
    if intent_id and payment.checkout_payment_intent_id is None:
        payment.checkout_payment_intent_id = intent_id
        # Its own events may have arrived first and be waiting for this record.
        await wake_events_waiting_on(session, intent_id, now=datetime.now(UTC))


@handles("checkout.session.completed", "checkout.session.async_payment_succeeded")
async def on_checkout_session_paid(session: AsyncSession, ctx: EventContext) -> None:
    checkout = ctx.parse(CheckoutSession)
    payment = await _bound_payment(session, checkout, Source(ctx.account))
    if payment is None:
        return
    intent_id = checkout.payment_intent
    if payment.checkout_session_id is None:
        payment.checkout_session_id = checkout.id
    await _record_session_intent(session, payment, intent_id)
    if checkout.payment_status == "paid" and payment.status is not PaymentStatus.succeeded:
        values: dict[str, Any] = counting_intent(payment, intent_id) if intent_id else {}
        await mark_succeeded(session, payment, now=ctx.created, values=values)
    await session.flush()


@handles("checkout.session.async_payment_failed")
async def on_checkout_session_payment_failed(session: AsyncSession, ctx: EventContext) -> None:
    checkout = ctx.parse(CheckoutSession)
    payment = await _bound_payment(session, checkout, Source(ctx.account))
    if payment is None:
        return
    await _record_session_intent(session, payment, checkout.payment_intent)
    values = {
        "failure_code": "async_payment_failed",
        "failure_message": "The delayed payment method failed; the buyer may try another one.",
    }
    if payment.status in (PaymentStatus.processing, PaymentStatus.requires_action):
        await transition_payment(
            session, payment, PaymentStatus.requires_payment, now=ctx.created, values=values
        )
    elif payment.status is PaymentStatus.requires_payment:
        payment.failure_code = values["failure_code"]
        payment.failure_message = values["failure_message"]
    await session.flush()


@handles("checkout.session.expired")
async def on_checkout_session_expired(session: AsyncSession, ctx: EventContext) -> None:
    checkout = ctx.parse(CheckoutSession)
    payment = await _payment_for_session(session, checkout, Source(ctx.account))
    if payment is None or payment.status not in PAYABLE_STATUSES:
        return
    if payment.checkout_session_id not in (None, checkout.id):
        return  # an older session of this payment; a newer one is open
    if payment.stripe_payment_intent_id is not None:
        # The Payment Element's PaymentIntent may still be paid: the expiry job cancels it at
        # Stripe before releasing anything.
        return
    await end_payment(session, payment, PaymentStatus.expired, now=ctx.created)
    await session.flush()
