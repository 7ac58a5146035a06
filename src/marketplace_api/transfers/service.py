"""Release of held funds (separate charges & transfers) and transfer reversals.

Release, in three short steps, never holding a transaction across the Stripe call:

1. Under the order's row lock: check the order can be released, compute what is owed
   (`vendor_amount` minus the vendor share of its refunds), and insert the transfer row with
   `INSERT … ON CONFLICT (order_id) DO NOTHING`. Commit. `UNIQUE(order_id)` is the database's
   guarantee of one transfer per order; a caller that finds the row already there returns it.
2. Claim the row (a lease on `next_attempt_at`), call `POST /v1/transfers` with the idempotency
   key `transfer:<id>` and our ids in metadata.
3. Record the answer in a new transaction: `paid` with the Stripe id (and the ledger row), or the
   error with the next attempt time (`retry_pending_transfers` picks it up).

A nothing-left transfer (the order was fully refunded first) is `skipped`: no Stripe call.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.config import ChargeType, Settings
from marketplace_api.errors import ProblemError
from marketplace_api.idempotency.service import IdempotencyContext
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MovementKind
from marketplace_api.notifications.notify import notify_transfer_failed, notify_transfer_released
from marketplace_api.orders.exceptions import OrderNotFound
from marketplace_api.orders.models import FulfilmentStatus, Order, OrderStatus
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.refunds.models import Refund, RefundStatus
from marketplace_api.transfers import attempts
from marketplace_api.transfers.exceptions import (
    OrderDisputed,
    OrderNotHeld,
    OrderNotReleasable,
    RefundRequestOpen,
)
from marketplace_api.transfers.models import (
    ReleaseTrigger,
    ReversalStatus,
    Transfer,
    TransferReversal,
    TransferStatus,
)
from marketplace_api.transfers.queries import (
    fresh_payment,
    has_open_dispute,
    has_pending_refund,
    lock_order,
    open_refund_request,
    refund_totals,
    transfer_of_order,
)
from marketplace_api.transfers.state import transition_reversal, transition_transfer

logger = logging.getLogger(__name__)

RELEASABLE_ORDER_STATUSES = frozenset(
    {OrderStatus.paid, OrderStatus.partially_refunded, OrderStatus.refunded}
)


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


async def _claim(
    session: AsyncSession,
    model: Any,
    row_id: uuid.UUID,
    statuses: Any,
    now: datetime,
    *,
    resume: bool = False,
) -> bool:
    """`resume`: taken over without waiting for another caller's lease (the retry of the API
    request whose attempt died; the Stripe key makes an overlapping call replay the first)."""
    due = or_(model.next_attempt_at.is_(None), model.next_attempt_at <= now)
    result = await session.execute(
        update(model)
        .where(model.id == row_id, model.status.in_(statuses), *([] if resume else [due]))
        .values(next_attempt_at=now + attempts.LEASE)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    claimed = result.first() is not None
    await session.commit()
    return claimed


async def _get_transfer(session: AsyncSession, transfer_id: uuid.UUID) -> Transfer:
    result = await session.execute(
        select(Transfer).where(Transfer.id == transfer_id).execution_options(populate_existing=True)
    )
    return result.scalar_one()


async def execute_transfer(
    session: AsyncSession,
    gateway: StripeGateway,
    transfer_id: uuid.UUID,
    *,
    now: datetime,
    resume: bool = False,
) -> Transfer:
    """Make the Stripe call of a pending or failed transfer (if nobody else is making it now)."""
    due = (TransferStatus.pending, TransferStatus.failed)
    if not await _claim(session, Transfer, transfer_id, due, now, resume=resume):
        transfer = await _get_transfer(session, transfer_id)
        await session.commit()
        return transfer
    transfer = await _get_transfer(session, transfer_id)
    payment = await fresh_payment(session, transfer.payment_id)
    await session.commit()
    generation = transfer.key_generation
    try:
        created = await gateway.create_transfer(
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
        )
    except ProblemError as exc:
        transient = attempts.is_transient(exc)
        logger.warning(
            "stripe transfer failed",
            extra={"transfer_id": str(transfer.id), "error": exc.code, "transient": transient},
        )
        tries = transfer.attempts + 1
        await transition_transfer(
            session,
            transfer.id,
            TransferStatus.pending
            if transient and transfer.status is TransferStatus.pending
            else TransferStatus.failed,
            values={
                "attempts": tries,
                "last_error": attempts.describe(exc),
                "next_attempt_at": attempts.next_attempt(now, tries),
                # A refused request created nothing: the retry is a new request (new key).
                "key_generation": generation if transient else generation + 1,
            },
            where=Transfer.key_generation == generation,
        )
        if not (transient and transfer.status is TransferStatus.pending):
            await notify_transfer_failed(session, transfer.id)
        await session.commit()
        return await _get_transfer(session, transfer.id)
    await record_transfer_created(session, transfer.id, created.model_dump(), observed_at=now)
    await session.commit()
    await execute_pending_reversals(session, gateway, transfer.id, now=now)
    return await _get_transfer(session, transfer.id)


async def record_transfer_created(
    session: AsyncSession,
    transfer_id: uuid.UUID,
    stripe_transfer: dict[str, Any],
    *,
    observed_at: datetime,
) -> bool:
    """Stripe made our transfer (the create answer, or `transfer.created`): mark it paid and
    write the ledger row, once. Never commits."""
    stripe_id = str(stripe_transfer["id"])
    moved = await transition_transfer(
        session,
        transfer_id,
        TransferStatus.paid,
        values={
            "stripe_transfer_id": stripe_id,
            "transferred_at": observed_at,
            "last_error": None,
            "next_attempt_at": None,
        },
    )
    if moved:
        transfer = await _get_transfer(session, transfer_id)
        await ledger.record(
            session,
            kind=MovementKind.transfer,
            amount=transfer.amount,
            currency=transfer.currency,
            stripe_id=stripe_id,
            occurred_at=observed_at,
            payment_id=transfer.payment_id,
            order_id=transfer.order_id,
            vendor_id=transfer.vendor_id,
            details={"trigger": transfer.trigger.value},
        )
        await notify_transfer_released(session, transfer_id)
    return moved


# --- reversals -------------------------------------------------------------------------------


async def _get_reversal(session: AsyncSession, reversal_id: uuid.UUID) -> TransferReversal:
    result = await session.execute(
        select(TransferReversal)
        .where(TransferReversal.id == reversal_id)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one()


async def execute_reversal(
    session: AsyncSession,
    gateway: StripeGateway,
    reversal_id: uuid.UUID,
    *,
    now: datetime,
    settings: Settings | None = None,
) -> TransferReversal:
    """Make the Stripe call of a pending or failed reversal, once its transfer has a Stripe id.
    A dispute reversal is canceled instead when `REVERSE_TRANSFER_ON_DISPUTE_LOSS` is off."""
    reversal = await _get_reversal(session, reversal_id)
    transfer = await _get_transfer(session, reversal.transfer_id)
    await session.commit()
    if transfer.stripe_transfer_id is None:
        return reversal  # made when the transfer is (execute_transfer, retry job)
    if reversal.refund_id is not None:
        refund_status = (
            await session.execute(select(Refund.status).where(Refund.id == reversal.refund_id))
        ).scalar_one()
        await session.commit()
        if refund_status is not RefundStatus.succeeded:
            # The buyer's money is not back yet (pending, or Stripe's answer unknown): the
            # vendor keeps its share until the refund succeeds; a failed one cancels this.
            return reversal
    if (
        reversal.dispute_id is not None
        and settings is not None
        and not settings.reverse_transfer_on_dispute_loss
    ):
        await transition_reversal(
            session,
            reversal.id,
            ReversalStatus.canceled,
            values={
                "last_error": "REVERSE_TRANSFER_ON_DISPUTE_LOSS is off",
                "next_attempt_at": None,
            },
        )
        await session.commit()
        return await _get_reversal(session, reversal.id)
    due = (ReversalStatus.pending, ReversalStatus.failed)
    if not await _claim(session, TransferReversal, reversal.id, due, now):
        return await _get_reversal(session, reversal.id)
    reversal = await _get_reversal(session, reversal.id)
    await session.commit()
    generation = reversal.key_generation
    metadata = {
        "reversal_id": str(reversal.id),
        "order_id": str(reversal.order_id),
        "transfer_id": str(transfer.id),
    }
    if reversal.refund_id is not None:
        metadata["refund_id"] = str(reversal.refund_id)
    if reversal.dispute_id is not None:
        metadata["dispute_id"] = str(reversal.dispute_id)
    try:
        created = await gateway.create_transfer_reversal(
            transfer.stripe_transfer_id,
            amount=reversal.amount,
            metadata=metadata,
            idempotency_key=reversal.idempotency_key,
        )
    except ProblemError as exc:
        transient = attempts.is_transient(exc)
        logger.warning(
            "stripe transfer reversal failed",
            extra={"reversal_id": str(reversal.id), "error": exc.code, "transient": transient},
        )
        tries = reversal.attempts + 1
        await transition_reversal(
            session,
            reversal.id,
            ReversalStatus.pending
            if transient and reversal.status is ReversalStatus.pending
            else ReversalStatus.failed,
            values={
                "attempts": tries,
                "last_error": attempts.describe(exc),
                "next_attempt_at": attempts.next_attempt(now, tries),
                "key_generation": generation if transient else generation + 1,
            },
            where=TransferReversal.key_generation == generation,
        )
        await session.commit()
        return await _get_reversal(session, reversal.id)
    await record_reversal_created(session, reversal.id, created.model_dump(), observed_at=now)
    await session.commit()
    return await _get_reversal(session, reversal.id)


async def record_reversal_created(
    session: AsyncSession,
    reversal_id: uuid.UUID,
    stripe_reversal: dict[str, Any],
    *,
    observed_at: datetime,
) -> bool:
    """Stripe made our reversal: mark it succeeded, add it to the transfer's `amount_reversed`
    and write the ledger row, once. Never commits."""
    stripe_id = str(stripe_reversal["id"])
    moved = await transition_reversal(
        session,
        reversal_id,
        ReversalStatus.succeeded,
        values={"stripe_reversal_id": stripe_id, "last_error": None, "next_attempt_at": None},
    )
    if not moved:
        return False
    reversal = await _get_reversal(session, reversal_id)
    transfer = await _get_transfer(session, reversal.transfer_id)
    await session.execute(
        update(Transfer)
        .where(Transfer.id == transfer.id)
        .values(amount_reversed=Transfer.amount_reversed + reversal.amount)
    )
    await ledger.record(
        session,
        kind=MovementKind.transfer_reversal,
        amount=-reversal.amount,
        currency=reversal.currency,
        stripe_id=stripe_id,
        occurred_at=observed_at,
        payment_id=transfer.payment_id,
        order_id=reversal.order_id,
        vendor_id=transfer.vendor_id,
        details={
            "refund_id": str(reversal.refund_id) if reversal.refund_id else None,
            "dispute_id": str(reversal.dispute_id) if reversal.dispute_id else None,
        },
    )
    return True


async def execute_pending_reversals(
    session: AsyncSession,
    gateway: StripeGateway,
    transfer_id: uuid.UUID,
    *,
    now: datetime,
    settings: Settings | None = None,
) -> None:
    """Reversals that waited for this transfer to reach Stripe (a refund raced the release)."""
    ids = (
        (
            await session.execute(
                select(TransferReversal.id).where(
                    TransferReversal.transfer_id == transfer_id,
                    TransferReversal.status == ReversalStatus.pending,
                )
            )
        )
        .scalars()
        .all()
    )
    await session.commit()
    for reversal_id in ids:
        await execute_reversal(session, gateway, reversal_id, now=now, settings=settings)


# --- jobs --------------------------------------------------------------------------------------


async def release_due_orders(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    *,
    now: datetime,
    settings: Settings | None = None,
    limit: int = 200,
) -> int:
    """Auto-release: separate-charge orders shipped at least `AUTO_RELEASE_DAYS` ago, paid, with
    no transfer yet, no open dispute and no open refund request. Returns how many were released
    (a transfer row made or found). Safe to run on several workers at once."""
    from marketplace_api.config import get_settings
    from marketplace_api.disputes.models import Dispute
    from marketplace_api.refunds.models import RefundRequest, RefundRequestStatus

    settings = settings or get_settings()
    cutoff = now - timedelta(days=settings.auto_release_days)
    async with sessionmaker() as session:
        order_ids = (
            (
                await session.execute(
                    select(Order.id)
                    .join(Payment, Payment.id == Order.payment_id)
                    .where(
                        Payment.charge_type == ChargeType.separate,
                        Payment.status == PaymentStatus.succeeded,
                        Order.status.in_(RELEASABLE_ORDER_STATUSES),
                        Order.fulfilment_status.in_(
                            (FulfilmentStatus.shipped, FulfilmentStatus.delivered)
                        ),
                        Order.shipped_at <= cutoff,
                        ~select(Transfer.id).where(Transfer.order_id == Order.id).exists(),
                        ~select(Dispute.id)
                        .where(Dispute.payment_id == Order.payment_id, Dispute.is_open.is_(True))
                        .exists(),
                        ~select(RefundRequest.id)
                        .where(
                            RefundRequest.order_id == Order.id,
                            RefundRequest.status == RefundRequestStatus.open,
                        )
                        .exists(),
                    )
                    .order_by(Order.shipped_at, Order.id)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
        await session.commit()
        released = 0
        for order_id in order_ids:
            try:
                await release_order(
                    session, gateway, order_id, trigger=ReleaseTrigger.auto, now=now
                )
            except ProblemError as exc:  # changed since the query (dispute, refund request)
                await session.rollback()
                logger.info(
                    "auto-release skipped", extra={"order_id": str(order_id), "reason": exc.code}
                )
                continue
            released += 1
    return released


async def retry_pending_transfers(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    *,
    now: datetime,
    settings: Settings | None = None,
    limit: int = 200,
) -> int:
    """Transfers left pending (a crash, a timeout) or refused by Stripe, whose next attempt is
    due, and reversals waiting for them. Same idempotency key after a timeout/5xx; a new key
    generation after a definitive refusal (nothing was created). Returns the transfers paid."""
    async with sessionmaker() as session:
        due = or_(Transfer.next_attempt_at.is_(None), Transfer.next_attempt_at <= now)
        ids = (
            (
                await session.execute(
                    select(Transfer.id)
                    .where(
                        Transfer.status.in_((TransferStatus.pending, TransferStatus.failed)),
                        due,
                        # not one a request has just inserted and is about to claim
                        or_(
                            Transfer.next_attempt_at.is_not(None),
                            Transfer.created_at <= now - attempts.LEASE,
                        ),
                    )
                    .order_by(Transfer.next_attempt_at.nulls_first(), Transfer.id)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
        await session.commit()
        paid = 0
        for transfer_id in ids:
            transfer = await execute_transfer(session, gateway, transfer_id, now=now)
            paid += transfer.status is TransferStatus.paid
    return paid
