"""Release of held funds (separate charges & transfers): one transfer per order.

Release, in three short steps, never holding a transaction across the Stripe call:

1. Under the order's row lock: check the order can be released, compute what is owed
   (`vendor_amount` minus the vendor share of its refunds), and insert the transfer row with
   `INSERT … ON CONFLICT (order_id) DO NOTHING`. Commit. `UNIQUE(order_id)` is the database's
   guarantee of one transfer per order; a caller that finds the row already there returns it.
2. Claim the row (a lease on `next_attempt_at`), call `POST /v1/transfers` with the idempotency
   key `transfer:<id>` and our ids in metadata (`stripe_attempts`).
3. Record the answer in a new transaction: `paid` with the Stripe id (and the ledger row), or the
   error with the next attempt time (`jobs.retry_pending_transfers` picks it up); then make the
   reversals that waited for the transfer.

A nothing-left transfer (the order was fully refunded first) is `skipped`: no Stripe call.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from functools import partial

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api import stripe_attempts
from marketplace_api.config import ChargeType
from marketplace_api.disputes.queries import has_open_dispute
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.orders.exceptions import OrderNotFound
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.orders.queries import lock_order
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.queries import fresh_payment
from marketplace_api.refunds.queries import has_pending_refund, open_refund_request, refund_totals
from marketplace_api.refunds.reversals import execute_pending_reversals
from marketplace_api.stripe_attempts import Failure, reload
from marketplace_api.transfers.exceptions import (
    OrderDisputed,
    OrderNotHeld,
    OrderNotReleasable,
    RefundRequestOpen,
)
from marketplace_api.transfers.models import ReleaseTrigger, Transfer, TransferStatus
from marketplace_api.transfers.notices import notify_transfer_failed
from marketplace_api.transfers.queries import transfer_of_order
from marketplace_api.transfers.records import record_transfer_created
from marketplace_api.transfers.state import record_failed_call

logger = logging.getLogger(__name__)

RELEASABLE_ORDER_STATUSES = frozenset(
    {OrderStatus.paid, OrderStatus.partially_refunded, OrderStatus.refunded}
)
# Transfers whose Stripe call is still to make (again).
DUE = (TransferStatus.pending, TransferStatus.failed)


def check_releasable(order: Order, payment: Payment) -> None:
    if payment.charge_type is not ChargeType.separate:
        raise OrderNotHeld()
    if order.status is OrderStatus.disputed:
        raise OrderDisputed("A disputed order's funds stay held until the dispute is closed.")
    if payment.status is not PaymentStatus.succeeded or order.status not in (
        RELEASABLE_ORDER_STATUSES
    ):
        raise OrderNotReleasable(f"The order is {order.status.value}; only paid orders release.")
    if not payment.stripe_charge_id:
        raise OrderNotReleasable(
            "The payment's charge is not recorded yet; retry in a moment.",
            reason="charge_not_recorded",
        )


async def release_order(
    session: AsyncSession,
    gateway: StripeGateway,
    order_id: uuid.UUID,
    *,
    trigger: ReleaseTrigger,
    now: datetime,
    actor_id: uuid.UUID | None = None,
    idempotency: IdempotencyContext | None = None,
) -> Transfer:
    """Release an order's held vendor share: one transfer per order, whoever asks and however
    often. Returns the transfer (paid, pending, failed with its error, or skipped).

    With an API Idempotency-Key the new transfer is bound to the key in the transaction that
    writes it; a retry of the key resumes its Stripe call at once (same key `transfer:<id>`)."""
    await session.commit()  # start from a fresh transaction
    order = await lock_order(session, order_id)
    if order is None:
        raise OrderNotFound()
    existing = await transfer_of_order(session, order_id)
    if existing is not None:
        await session.commit()
        if (
            idempotency is not None
            and existing.id in idempotency.resource_ids
            and existing.status is TransferStatus.pending
        ):
            return await execute_transfer(session, gateway, existing.id, now=now, resume=True)
        return existing
    payment = await fresh_payment(session, order.payment_id)
    check_releasable(order, payment)
    if await has_open_dispute(session, payment.id):
        raise OrderDisputed("A disputed order's funds stay held until the dispute is closed.")
    if trigger is not ReleaseTrigger.admin and await open_refund_request(session, order.id):
        raise RefundRequestOpen("The vendor or an admin must act on the refund request first.")
    if await has_pending_refund(session, order.id):
        # Netting a pending refund out of the transfer would underpay the vendor for good if the
        # refund then fails; the release waits until Stripe settles it (the job retries).
        raise OrderNotReleasable(
            "A refund of this order is still pending at Stripe; the release waits for it.",
            reason="refund_pending",
        )
    _, refunded_vendor_share = await refund_totals(session, order.id)
    amount = max(order.vendor_amount - refunded_vendor_share, 0)
    transfer_id = uuid.uuid4()
    inserted = (
        await session.execute(
            insert(Transfer)
            .values(
                id=transfer_id,
                order_id=order.id,
                payment_id=payment.id,
                vendor_id=order.vendor_id,
                amount=amount,
                currency=order.currency,
                destination=order.vendor_stripe_account_id,
                status=TransferStatus.skipped if amount == 0 else TransferStatus.pending,
                trigger=trigger,
                released_by_id=actor_id,
            )
            .on_conflict_do_nothing(index_elements=[Transfer.order_id])
            .returning(Transfer.id)
        )
    ).scalar_one_or_none()
    if inserted is not None and idempotency is not None:
        await idempotency.bind(session, transfer_id)
    transfer = await transfer_of_order(session, order.id)
    await session.commit()
    if transfer is None:  # pragma: no cover - the row was inserted or already there
        raise OrderNotReleasable("The transfer could not be recorded; retry.")
    if inserted is None or transfer.status is not TransferStatus.pending:
        return transfer
    logger.info(
        "order released",
        extra={"order_id": str(order.id), "transfer_id": str(transfer.id), "trigger": trigger},
    )
    return await execute_transfer(session, gateway, transfer.id, now=now)


async def execute_transfer(
    session: AsyncSession,
    gateway: StripeGateway,
    transfer_id: uuid.UUID,
    *,
    now: datetime,
    resume: bool = False,
) -> Transfer:
    """Make the Stripe call of a pending or failed transfer (if nobody else is making it now)."""
    transfer, claimed = await stripe_attempts.claim(
        session, Transfer, transfer_id, Transfer.status.in_(DUE), now=now, resume=resume
    )
    if not claimed:
        await session.commit()
        return transfer
    payment = await fresh_payment(session, transfer.payment_id)
    failure = await stripe_attempts.call(
        session,
        "transfer",
        partial(
            gateway.create_transfer,
            amount=transfer.amount,
            currency=transfer.currency,
            destination=transfer.destination,
            source_transaction=payment.stripe_charge_id,
            transfer_group=payment.transfer_group,
            metadata={
                "order_id": str(transfer.order_id),
                "payment_id": str(transfer.payment_id),
                "transfer_id": str(transfer.id),
            },
            idempotency_key=transfer.idempotency_key,
        ),
        ids={"transfer_id": str(transfer.id)},
        record=lambda created: record_transfer_created(
            session, transfer.id, created.id, observed_at=now
        ),
        record_failure=lambda failure: _record_failure(session, transfer, failure, now=now),
    )
    if failure is None:
        await execute_pending_reversals(session, gateway, transfer.id, now=now)
    return await reload(session, Transfer, transfer.id)


async def _record_failure(
    session: AsyncSession, transfer: Transfer, failure: Failure, *, now: datetime
) -> None:
    if await record_failed_call(session, transfer, failure, now=now):
        await notify_transfer_failed(session, transfer.id)
