"""Payment operations that talk to Stripe: create the PaymentIntent, cancel, expire, Checkout.

Pattern everywhere: the row is committed first, Stripe is called with no transaction open and an
idempotency key derived from the row, and the answer is recorded in a new short transaction with
a conditional UPDATE (or through the state machine), so retries, jobs and webhooks converge.

Failure policy when creating a PaymentIntent (a failure leaves nothing half-made):

* Stripe unreachable, rate limiting or 5xx (`StripeUnavailable`, 503 + Retry-After): the payment
  stays `requires_payment` with no PaymentIntent and its reservation kept. A retry of the same
  request (same Idempotency-Key) or `ensure_payment_intent` from a job resumes it with the SAME
  Stripe idempotency key `payment:<id>:create`, so Stripe answers with the PaymentIntent it may
  already have created: never two PaymentIntents for one payment. Nobody retrying, the expiry job
  releases the stock when the reservation ends (a PaymentIntent created while its answer was lost
  cannot be paid: its client secret never left the server).
* Stripe refused the request (`StripeRequestRejected` 502, `StripePermissionDenied` 409, e.g. the
  vendor's account lost its capabilities): retrying cannot help, so the payment ends `failed`, its
  orders `failed`, and the stock is restored at once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import Settings
from marketplace_api.errors import ProblemError
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import (
    StripeGateway,
    StripePermissionDenied,
    StripeRequestRejected,
)
from marketplace_api.orders.models import Order, OrderItem
from marketplace_api.orders.queries import orders_of_payment
from marketplace_api.payments import intents
from marketplace_api.payments.exceptions import PaymentNotPayable
from marketplace_api.payments.models import PAYABLE_STATUSES, Payment, PaymentStatus
from marketplace_api.payments.state import apply_payment_intent, end_payment, lock_payment

logger = logging.getLogger(__name__)

# Stripe Checkout requires `expires_at` between 30 minutes and 24 hours after creation.
CHECKOUT_MIN_LIFETIME = timedelta(minutes=30)
CHECKOUT_MAX_LIFETIME = timedelta(hours=24)
CHECKOUT_MARGIN = timedelta(minutes=2)  # time between our computation and Stripe's check


# Recording a PaymentIntent, built once: building the statement cost more CPU than sending it.
_RECORD_INTENT = (
    update(Payment)
    .where(
        Payment.id == bindparam("payment_id"),
        or_(
            Payment.stripe_payment_intent_id.is_(None),
            Payment.stripe_payment_intent_id == bindparam("intent_id"),
        ),
        Payment.client_secret.is_(None),
    )
    .values(stripe_payment_intent_id=bindparam("intent_id"), client_secret=bindparam("secret"))
    .returning(Payment)
    .execution_options(synchronize_session=False, populate_existing=True)
)
_PAYMENT_AS_IS = (
    select(Payment)
    .where(Payment.id == bindparam("payment_id"))
    .execution_options(populate_existing=True)
)


def on_behalf_of_enabled(settings: Settings) -> bool:
    """Destination charges with `on_behalf_of` = the vendor (`DESTINATION_ON_BEHALF_OF`)."""
    return settings.destination_on_behalf_of


async def _end_transaction(session: AsyncSession) -> None:
    """Nothing may stay open across a Stripe call (reads included: no idle transaction)."""
    await session.commit()


async def ensure_payment_intent(
    session: AsyncSession,
    gateway: StripeGateway,
    payment: Payment,
    *,
    now: datetime,
    on_behalf_of: bool = False,
    orders: Sequence[Order] | None = None,
) -> Payment:
    """Create the payment's PaymentIntent if it has none yet (idempotency key
    `payment:<id>:create`), and record its id and client secret. Safe to call again at any time;
    see the module docstring for what happens on Stripe errors.

    `orders`: all the payment's orders when the caller holds them (the checkout that has just
    written them); loaded otherwise. Returns the payment as its row is now."""
    if payment.stripe_payment_intent_id and payment.client_secret:
        return payment
    if payment.status is not PaymentStatus.requires_payment:
        raise PaymentNotPayable(f"The payment is {payment.status.value}.")
    if orders is None:
        orders = await orders_of_payment(session, payment.id)
    await _end_transaction(session)
    try:
        intent = await gateway.create_payment_intent(
            amount=payment.amount,
            currency=payment.currency,
            metadata=intents.metadata(payment, orders),
            idempotency_key=intents.idempotency_key(payment, "create"),
            receipt_email=payment.receipt_email,
            statement_descriptor_suffix=payment.statement_descriptor_suffix,
            **intents.charge_parameters(payment, orders, on_behalf_of=on_behalf_of),
        )
    except (StripeRequestRejected, StripePermissionDenied) as exc:
        await _fail_creation(session, payment.id, exc, now=now)
        raise
    # One round trip: the conditional UPDATE brings the row back as it now is (populate_existing
    # refreshes `payment` in the identity map). It matches nothing when a concurrent call has
    # recorded the PaymentIntent first: then the row is read as it is.
    current = (
        await session.execute(
            _RECORD_INTENT,
            {"payment_id": payment.id, "intent_id": intent.id, "secret": intent.client_secret},
        )
    ).scalar_one_or_none()
    if current is None:
        current = (await session.execute(_PAYMENT_AS_IS, {"payment_id": payment.id})).scalar_one()
    await session.commit()
    if current.status not in PAYABLE_STATUSES:
        # Expired or cancelled while Stripe was answering: do not hand out the client secret.
        raise PaymentNotPayable(f"The payment is {current.status.value}.")
    return current


async def _fail_creation(
    session: AsyncSession, payment_id: uuid.UUID, exc: ProblemError, *, now: datetime
) -> None:
    payment = await lock_payment(session, payment_id)
    if payment is not None:
        await end_payment(
            session,
            payment,
            PaymentStatus.failed,
            now=now,
            values={"failure_code": exc.code, "failure_message": exc.detail},
        )
    await session.commit()


async def cancel_payment(
    session: AsyncSession,
    gateway: StripeGateway,
    payment: Payment,
    *,
    now: datetime,
    to: PaymentStatus = PaymentStatus.canceled,
    reason: str = "requested_by_customer",
) -> Payment:
    """Cancel an unpaid payment (buyer cancel: `canceled`; expiry job: `expired`).

    The PaymentIntent is cancelled at Stripe first (idempotency key `payment:<id>:cancel`, on the
    vendor's account for direct charges): once Stripe has cancelled it, it can never succeed, so
    releasing the stock afterwards is safe. When Stripe refuses because the intent moved on
    (succeeded or processing at that very moment), its real state is retrieved and applied
    instead: a payment that succeeds at the same moment wins. Commits.
    """
    intent_id = payment.stripe_payment_intent_id
    await _end_transaction(session)
    if payment.checkout_session_id and (
        payment.checkout_session_expires_at is None or payment.checkout_session_expires_at > now
    ):
        # An open hosted page could still be paid: close it first. Stripe refuses when it was
        # completed meanwhile; the payment's own events then decide, so answer 409 for now.
        try:
            await gateway.expire_checkout_session(
                payment.checkout_session_id,
                idempotency_key=intents.idempotency_key(
                    payment, f"checkout_session:{payment.checkout_session_seq}:expire"
                ),
                stripe_account=payment.stripe_account_id,
            )
        except StripeRequestRejected as exc:
            raise PaymentNotPayable(
                "The hosted checkout page was completed or is closing; try again shortly."
            ) from exc
    if intent_id:
        try:
            await gateway.cancel_payment_intent(
                intent_id,
                idempotency_key=intents.idempotency_key(payment, "cancel"),
                stripe_account=payment.stripe_account_id,
                reason=reason,
            )
        except StripeRequestRejected:
            intent = await gateway.retrieve_payment_intent(
                intent_id, stripe_account=payment.stripe_account_id
            )
            await apply_payment_intent(session, intent, observed_at=now)
            await session.commit()
            await session.refresh(payment)
            if intent.status != "canceled":
                return payment
    locked = await lock_payment(session, payment.id)
    if locked is not None and locked.status in PAYABLE_STATUSES:
        await end_payment(session, locked, to, now=now)
    await session.commit()
    await session.refresh(payment)
    return payment


async def expire_reservations(
    session: AsyncSession, gateway: StripeGateway, *, now: datetime, limit: int = 100
) -> int:
    """Expire unpaid payments whose reservation ended before `now`: cancel the PaymentIntent at
    Stripe, then release the stock and mark payment and orders `expired`. Returns how many were
    expired. A payment found succeeded or processing at Stripe is applied instead (it wins).
    Processing payments are never expired. Commits after each payment; holds no transaction
    across Stripe calls. Transient Stripe errors leave the payment for the next run."""
    result = await session.execute(
        select(Payment)
        .where(
            Payment.status.in_(PAYABLE_STATUSES),
            Payment.reservation_expires_at < now,
        )
        .order_by(Payment.reservation_expires_at)
        .limit(limit)
    )
    candidates = list(result.scalars().all())
    await _end_transaction(session)
    expired = 0
    for payment in candidates:
        try:
            done = await cancel_payment(
                session, gateway, payment, now=now, to=PaymentStatus.expired, reason="abandoned"
            )
        except ProblemError as exc:
            await session.rollback()
            logger.warning(
                "could not expire a payment yet",
                extra={"payment_id": str(payment.id), "code": exc.code},
            )
            continue
        if done.status is PaymentStatus.expired:
            expired += 1
    return expired


# --- Stripe Checkout (hosted page) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckoutSessionResult:
    url: str
    session_id: str
    expires_at: datetime


async def create_checkout_session(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    payment: Payment,
    *,
    customer_email: str | None,
    now: datetime,
    idempotency: IdempotencyContext | None = None,
) -> CheckoutSessionResult:
    """A Stripe Checkout Session for the whole payment (all its orders: a multi-vendor cart is
    paid at once, whichever of its orders the buyer named).

    `expires_at` = the reservation's end, but at least 30 minutes (+ margin) from now as Stripe
    requires, at most 24 hours; when that is later than the reservation, the reservation (payment
    and orders) is extended to match, so stock is held as long as the page can be paid. An open
    session that is not about to expire is returned again. Attempt `n` uses the idempotency key
    `payment:<id>:checkout_session:<n>` and its planned expiry is stored before the call, so a
    retry after a timeout sends identical parameters and Stripe answers with the same session.
    With an API Idempotency-Key, the payment is bound to it in the transaction that plans the
    attempt; a retry of the key runs this again and lands on the same attempt.
    """
    locked = await lock_payment(session, payment.id)
    if locked is None or locked.status not in PAYABLE_STATUSES:
        current = locked.status.value if locked else "gone"
        await session.rollback()
        raise PaymentNotPayable(f"The payment is {current}.")
    payment = locked
    if (
        payment.checkout_session_id
        and payment.checkout_session_url
        and payment.checkout_session_expires_at
        and payment.checkout_session_expires_at > now + CHECKOUT_MARGIN
    ):
        open_session = CheckoutSessionResult(
            payment.checkout_session_url,
            payment.checkout_session_id,
            payment.checkout_session_expires_at,
        )
        await session.commit()  # releases the lock; nothing changed
        return open_session
    planned = payment.checkout_session_expires_at
    if (
        payment.checkout_session_id is not None
        or planned is None
        or (planned < now + CHECKOUT_MIN_LIFETIME + timedelta(seconds=30))
    ):
        # A new attempt: the previous one was recorded (and is about to expire) or its planned
        # expiry is no longer acceptable to Stripe.
        planned = min(
            max(payment.reservation_expires_at, now + CHECKOUT_MIN_LIFETIME + CHECKOUT_MARGIN),
            now + CHECKOUT_MAX_LIFETIME - CHECKOUT_MARGIN,
        ).replace(microsecond=0)
        payment.checkout_session_seq += 1
        payment.checkout_session_id = None
        payment.checkout_session_url = None
        payment.checkout_session_expires_at = planned
    if payment.reservation_expires_at < planned:
        payment.reservation_expires_at = planned
        await session.execute(
            update(Order)
            .where(Order.payment_id == payment.id)
            .values(reservation_expires_at=planned)
            .execution_options(synchronize_session=False)
        )
    seq = payment.checkout_session_seq
    orders = await orders_of_payment(session, payment.id)
    items = (
        await session.execute(
            select(OrderItem)
            .where(OrderItem.order_id.in_([o.id for o in orders]))
            .order_by(OrderItem.order_id, OrderItem.listing_id)
        )
    ).scalars()
    line_items = [(i.title, i.unit_amount, i.quantity) for i in items]
    if idempotency is not None and payment.id not in idempotency.resource_ids:
        await idempotency.bind(session, payment.id)
    await session.commit()

    base = settings.frontend_url.rstrip("/")
    created = await gateway.create_checkout_session(
        currency=payment.currency,
        line_items=line_items,
        client_reference_id=str(payment.id),
        metadata=intents.metadata(payment, orders),
        success_url=f"{base}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{base}/checkout/cancel?payment_id={payment.id}",
        expires_at=int(planned.timestamp()),
        idempotency_key=intents.idempotency_key(payment, f"checkout_session:{seq}"),
        customer_email=payment.receipt_email or customer_email,
        statement_descriptor_suffix=payment.statement_descriptor_suffix,
        **intents.charge_parameters(payment, orders, on_behalf_of=on_behalf_of_enabled(settings)),
    )
    await session.execute(
        update(Payment)
        .where(Payment.id == payment.id, Payment.checkout_session_seq == seq)
        .values(checkout_session_id=created.id, checkout_session_url=created.url)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return CheckoutSessionResult(created.url or "", created.id, planned)
