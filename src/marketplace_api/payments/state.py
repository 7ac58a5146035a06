"""The payment status state machine, and applying Stripe's view of a PaymentIntent to it.

`transition_payment` is the only code that changes `payments.status`: a conditional
`UPDATE … WHERE status IN (allowed predecessors)`. Terminal states (succeeded, canceled, expired,
failed) never move again; an older non-terminal update (by Stripe's event time) is ignored.

`apply_payment_intent` is what webhooks (`payments.events`), the reconcile job and the expiry job
call with a PaymentIntent (typed; JSON is parsed first). It never commits and never calls Stripe.

A payment that succeeds defers one `notify_payment_succeeded` job in the same transaction (it
commits or rolls back with the state change); the job writes and sends the buyer's receipt and
the vendors' new-order e-mails, outside the webhook's transaction. The conditional transition
defers it once per payment, and the e-mails' dedupe keys make a rerun of the job send nothing new.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.integrations.stripe.objects import CheckoutSession, PaymentIntent
from marketplace_api.jobs.enqueue import enqueue
from marketplace_api.orders.models import OrderStatus
from marketplace_api.orders.queries import orders_of_payment
from marketplace_api.orders.state import transition_orders
from marketplace_api.payments.duplicates import record_duplicate
from marketplace_api.payments.ledger import record_payment_succeeded
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.queries import payment_account
from marketplace_api.tables import columns, load_row, table_of
from marketplace_api.webhooks.binding import (
    Mismatch,
    Source,
    account_of,
    is_older,
    metadata_id,
    verify,
)
from marketplace_api.webhooks.dispatch import RetryLater

logger = logging.getLogger(__name__)

P = PaymentStatus
ALLOWED_TRANSITIONS: Mapping[PaymentStatus, frozenset[PaymentStatus]] = {
    P.requires_payment: frozenset(
        {P.requires_action, P.processing, P.succeeded, P.canceled, P.expired, P.failed}
    ),
    P.requires_action: frozenset(
        {P.requires_payment, P.processing, P.succeeded, P.canceled, P.expired}
    ),
    # Money in flight cannot expire; it ends succeeded, or fails back to requires_payment.
    P.processing: frozenset({P.requires_payment, P.requires_action, P.succeeded, P.canceled}),
    P.succeeded: frozenset(),
    P.canceled: frozenset(),
    P.expired: frozenset(),
    P.failed: frozenset(),
}

# The job that writes and sends a succeeded payment's e-mails (registered in `worker.tasks`).
NOTIFY_SUCCEEDED_TASK = "notify_payment_succeeded"

# When a payment ends without money, its pending orders go to this status (and stock comes back).
_ORDER_RELEASE = {
    P.canceled: OrderStatus.cancelled,
    P.expired: OrderStatus.expired,
    P.failed: OrderStatus.failed,
}


def predecessors(to: PaymentStatus) -> frozenset[PaymentStatus]:
    return frozenset(s for s, nexts in ALLOWED_TRANSITIONS.items() if to in nexts)


# Built once (`tables`): a transition's new status and values are parameters (they become the SET);
# the updated row comes back whole.
_PAYMENTS = table_of(Payment)
_TRANSITION = {
    to: update(_PAYMENTS)
    .where(_PAYMENTS.c.id == bindparam("payment_id_"), _PAYMENTS.c.status.in_(predecessors(to)))
    .returning(*_PAYMENTS.c)
    for to in PaymentStatus
}
_LOCK = (
    select(Payment)
    .where(Payment.id == bindparam("payment_id_"))
    .with_for_update()
    .execution_options(populate_existing=True)
)
_BY_INTENT = select(_PAYMENTS.c.id).where(
    (_PAYMENTS.c.stripe_payment_intent_id == bindparam("intent_id"))
    | (_PAYMENTS.c.checkout_payment_intent_id == bindparam("intent_id"))
    | (_PAYMENTS.c.replaced_payment_intent_id == bindparam("intent_id"))
)


async def transition_payment(
    session: AsyncSession,
    payment: Payment,
    to: PaymentStatus,
    *,
    now: datetime,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """Move `payment` to `to` if allowed from its current status in the database; `payment` is
    refreshed from the updated row (RETURNING, no second query).

    Returns False (and changes nothing) when the transition is not allowed, including when a
    concurrent transaction already moved it.
    """
    await session.flush()  # pending attribute changes must not be lost by the refresh
    params = {
        "payment_id_": payment.id,
        **columns(_PAYMENTS, {"status": to, "status_updated_at": now, **(values or {})}),
    }
    row = (await session.execute(_TRANSITION[to], params)).first()
    if row is None:
        return False
    load_row(payment, row)
    return True


async def lock_payment(session: AsyncSession, payment_id: uuid.UUID) -> Payment | None:
    """The payment, locked `FOR UPDATE` until the end of the transaction, with fresh values."""
    return (await session.execute(_LOCK, {"payment_id_": payment_id})).scalar_one_or_none()


async def end_payment(
    session: AsyncSession,
    payment: Payment,
    to: PaymentStatus,
    *,
    now: datetime,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """Cancel, expire or fail an unpaid payment: its pending orders follow and their reserved
    stock is restored, exactly once (the conditional status changes are the guard)."""
    if to not in _ORDER_RELEASE:
        raise ValueError(f"{to} does not end a payment without money")
    moved = await transition_payment(session, payment, to, now=now, values=values)
    if moved:
        await transition_orders(session, _ORDER_RELEASE[to], now=now, payment_id=payment.id)
    return moved


async def mark_succeeded(
    session: AsyncSession,
    payment: Payment,
    *,
    now: datetime,
    values: Mapping[str, Any] | None = None,
) -> bool:
    moved = await transition_payment(
        session,
        payment,
        P.succeeded,
        now=now,
        values={
            "succeeded_at": now,
            "failure_code": None,
            "failure_message": None,
            **(values or {}),
        },
    )
    if moved:
        await transition_orders(session, OrderStatus.paid, now=now, payment_id=payment.id)
        orders = await orders_of_payment(session, payment.id)
        await record_payment_succeeded(session, payment, orders)  # charge, fee, settled share
        # Receipt + vendors' new order: written and sent by a job, deferred with this change.
        await enqueue(session, NOTIFY_SUCCEEDED_TASK, args={"payment_id": str(payment.id)})
    return moved


# --- applying a PaymentIntent ---------------------------------------------------------------


async def find_payment_for_intent(
    session: AsyncSession, intent: PaymentIntent
) -> tuple[Payment | None, bool]:
    """The payment an intent belongs to, locked; and whether the intent names one of ours."""
    payment_id = metadata_id(intent.metadata, "payment_id")
    if payment_id is not None:
        payment = await lock_payment(session, payment_id)
        if payment is not None:
            return payment, True
    found = await session.execute(_BY_INTENT, {"intent_id": intent.id})
    other_id = found.scalars().first()
    if other_id is not None:
        return await lock_payment(session, other_id), True
    return None, payment_id is not None


def _charge_values(intent: PaymentIntent) -> dict[str, Any]:
    """Charge id, destination transfer id and Stripe's fee, where the intent carries them."""
    values: dict[str, Any] = {}
    if intent.latest_charge:
        values["stripe_charge_id"] = intent.latest_charge
    charge = intent.expanded_charge
    if charge is not None:
        if charge.transfer:
            values["stripe_transfer_id"] = charge.transfer
        if charge.balance_transaction is not None and charge.balance_transaction.fee is not None:
            values["stripe_fee"] = charge.balance_transaction.fee
    return values


def _failure(intent: PaymentIntent) -> tuple[str | None, str | None]:
    error = intent.last_payment_error
    if error is None:
        return None, None
    return (error.decline_code or error.code or error.type or None), (error.message or None)


def _synced(payment: Payment, observed_at: datetime) -> datetime:
    if payment.stripe_synced_at is None or payment.stripe_synced_at < observed_at:
        return observed_at
    return payment.stripe_synced_at


def known_intents(payment: Payment) -> tuple[str | None, ...]:
    return (
        payment.stripe_payment_intent_id,
        payment.checkout_payment_intent_id,
        payment.replaced_payment_intent_id,
    )


def bind_payment_object(
    payment: Payment,
    obj: PaymentIntent | CheckoutSession,
    *,
    source: Source | None,
    amount_field: str = "amount",
) -> None:
    """The amount, currency and connected account of a PaymentIntent or Checkout Session must be
    the payment's (`Mismatch` otherwise)."""
    verify(
        f"payment {payment.id}",
        obj,
        amount=payment.amount,
        amount_field=amount_field,
        currency=payment.currency,
        account=account_of(source),
        expected_account=payment_account(payment),
    )


def bind_intent(payment: Payment, intent: PaymentIntent, *, source: Source | None) -> None:
    """`intent` is one of the payment's PaymentIntents, or `Mismatch`.

    Its id must be one we stored: the Payment Element's, the Checkout Session's, or the one
    another replaced. When we stored none (the create answer was lost) it is adopted, as long as
    amount, currency and account agree. A Checkout Session's PaymentIntent can outrun the
    `checkout.session.*` event that records it: while a session exists whose PaymentIntent we
    have not recorded, an unknown id waits for it (`RetryLater`) instead of being refused."""
    bind_payment_object(payment, intent, source=source)
    intent_id = intent.id
    if intent_id in known_intents(payment) or payment.stripe_payment_intent_id is None:
        return
    if payment.checkout_session_seq > 0 and payment.checkout_payment_intent_id is None:
        raise RetryLater(f"Checkout Session PaymentIntent {intent_id} is not recorded yet")
    raise Mismatch(f"payment {payment.id}", "id", payment.stripe_payment_intent_id, intent_id)


async def apply_payment_intent(
    session: AsyncSession,
    intent: PaymentIntent,
    *,
    observed_at: datetime,
    source: Source | None = None,
) -> Payment | None:
    """Bring our payment (and its orders) to what `intent` says, through the state machine.

    The payment is found through `metadata.payment_id` first, then the PaymentIntent id, and the
    intent must then be bound to it (`bind_intent`; `source` is the event's, None for our own
    retrievals). An intent naming a payment we do not have (yet) raises `RetryLater` (the event
    outran our commit); an intent that is not ours returns None. Applying the same intent twice
    changes nothing the second time. Does not commit.
    """
    payment, ours = await find_payment_for_intent(session, intent)
    if payment is None:
        if ours:
            raise RetryLater(f"payment for PaymentIntent {intent.id} is not committed yet")
        return None
    bind_intent(payment, intent, source=source)

    intent_id, status = intent.id, intent.status
    if payment.stripe_payment_intent_id is None and intent_id:
        # Created, but the answer was lost (timeout) before we recorded it.
        payment.stripe_payment_intent_id = intent_id
    is_current = payment.stripe_payment_intent_id == intent_id

    if status == "succeeded":
        await _apply_succeeded(session, payment, intent, observed_at=observed_at)
    elif status == "canceled":
        # Only the PaymentIntent that counts cancels the payment; an abandoned Checkout Session's
        # PaymentIntent being cancelled does not cancel a payment still payable another way.
        if is_current:
            await end_payment(
                session,
                payment,
                P.canceled,
                now=observed_at,
                values={"stripe_synced_at": _synced(payment, observed_at)},
            )
    else:
        await _apply_non_terminal(session, payment, intent, status, observed_at=observed_at)
    await session.flush()
    return payment


async def _apply_succeeded(
    session: AsyncSession, payment: Payment, intent: PaymentIntent, *, observed_at: datetime
) -> None:
    intent_id = intent.id
    charge = _charge_values(intent)
    if payment.status is P.succeeded:
        if payment.stripe_payment_intent_id != intent_id:
            # Paid twice (a Checkout Session's and the Payment Element's PaymentIntent): the
            # second one is refunded whole, once.
            await record_duplicate(session, payment, intent, observed_at=observed_at)
            return
        # Fill in what an earlier, thinner view (e.g. an unexpanded charge) did not carry.
        for name, value in charge.items():
            if getattr(payment, name) is None:
                setattr(payment, name, value)
        return
    if payment.status in (P.canceled, P.expired, P.failed):
        # Cannot happen when cancellation went through Stripe first; if it does, the buyer paid
        # for orders that were released: the money goes back like a duplicate's.
        await record_duplicate(session, payment, intent, observed_at=observed_at)
        return
    await mark_succeeded(
        session,
        payment,
        now=observed_at,
        values={
            **counting_intent(payment, intent_id),
            "stripe_synced_at": _synced(payment, observed_at),
            **charge,
        },
    )


def counting_intent(payment: Payment, intent_id: str) -> dict[str, Any]:
    """The values that make `intent_id` the PaymentIntent that counts, remembering the one it
    replaces (so a late success of that one is still recognised as ours: a duplicate)."""
    values: dict[str, Any] = {"stripe_payment_intent_id": intent_id}
    current = payment.stripe_payment_intent_id
    if current is not None and current != intent_id:
        values["replaced_payment_intent_id"] = current
    return values


_NON_TERMINAL = {
    "requires_payment_method": P.requires_payment,
    "requires_confirmation": P.requires_payment,
    "requires_action": P.requires_action,
    "processing": P.processing,
    "requires_capture": P.processing,  # we capture automatically; treat as money in flight
}


async def _apply_non_terminal(
    session: AsyncSession,
    payment: Payment,
    intent: PaymentIntent,
    status: str,
    *,
    observed_at: datetime,
) -> None:
    target = _NON_TERMINAL.get(status)
    if target is None:
        logger.warning("unknown PaymentIntent status", extra={"status": status})
        return
    if payment.status in ALLOWED_TRANSITIONS and not ALLOWED_TRANSITIONS[payment.status]:
        return  # terminal: never moves back
    if is_older(observed_at, payment.stripe_synced_at):
        return  # an older view than one already applied
    values: dict[str, Any] = {"stripe_synced_at": observed_at}
    code, message = _failure(intent)
    if target is P.requires_payment and (code or message):
        values.update(failure_code=code, failure_message=message)
    if payment.status is target:
        for name, value in values.items():
            setattr(payment, name, value)
        return
    await transition_payment(session, payment, target, now=observed_at, values=values)
