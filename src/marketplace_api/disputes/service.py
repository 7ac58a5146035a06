"""Disputes from `charge.dispute.*` events, and the admin list.

`apply_dispute` is the one entry point (webhooks, never commits, never calls Stripe):

- first sight: the dispute row is inserted (`ON CONFLICT (stripe_dispute_id) DO NOTHING`), the
  payment's orders' statuses are remembered and the orders move to `disputed` — which blocks
  their release;
- later events update status, amount, reason and evidence deadline, unless they are older than
  the last one applied; a closed dispute never reopens;
- closing `won` (or `prevented`, `warning_closed`) puts the orders back where they were;
  `lost` ends them `refunded` and, for a separate charge already transferred, writes a transfer
  reversal of the vendor's share of the disputed amount (made by the retry job; canceled there
  when `REVERSE_TRANSFER_ON_DISPUTE_LOSS` is off).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.disputes.models import CLOSED_STATUSES, Dispute
from marketplace_api.disputes.notices import notify_dispute_opened
from marketplace_api.disputes.schemas import DisputePage, DisputeRead
from marketplace_api.integrations.stripe.objects import Dispute as StripeDispute
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MovementKind
from marketplace_api.money import allocate
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.orders.queries import orders_of_payment
from marketplace_api.orders.state import transition_orders
from marketplace_api.pagination import keyset_page, split_page
from marketplace_api.payments.models import Payment
from marketplace_api.payments.queries import payment_account
from marketplace_api.transfers.models import (
    ReversalStatus,
    Transfer,
    TransferReversal,
    TransferStatus,
)
from marketplace_api.webhooks.binding import Mismatch, is_older, verify
from marketplace_api.webhooks.dispatch import RetryLater

logger = logging.getLogger(__name__)

WON = frozenset({"won", "prevented", "warning_closed"})


def _evidence_due_by(obj: StripeDispute) -> datetime | None:
    due_by = obj.evidence_details.due_by
    return datetime.fromtimestamp(due_by, UTC) if due_by is not None else None


async def _payment_for(session: AsyncSession, obj: StripeDispute) -> Payment | None:
    conditions = []
    if obj.charge:
        conditions.append(Payment.stripe_charge_id == obj.charge)
    if obj.payment_intent:
        conditions.append(Payment.stripe_payment_intent_id == obj.payment_intent)
    if not conditions:
        return None
    return (await session.execute(select(Payment).where(or_(*conditions)))).scalars().first()


def _bind(payment: Payment, obj: StripeDispute, account: str | None) -> None:
    """The disputed charge must be the payment's, in its currency, on its account (the vendor's
    for direct charges, the platform's otherwise), for at most its amount (`Mismatch`)."""
    verify(
        f"payment {payment.id}",
        obj,
        currency=payment.currency,
        account=account,
        expected_account=payment_account(payment),
        references={
            "charge": payment.stripe_charge_id,
            "payment_intent": payment.stripe_payment_intent_id,
        },
    )
    if not 0 < obj.amount <= payment.amount:
        raise Mismatch(f"payment {payment.id}", "dispute amount", payment.amount, obj.amount)


async def apply_dispute(
    session: AsyncSession,
    obj: StripeDispute,
    *,
    observed_at: datetime,
    account: str | None,
) -> Dispute:
    """Bring our dispute (and the payment's orders) to Stripe's dispute object."""
    dispute_id = obj.id
    payment = await _payment_for(session, obj)
    if payment is None:
        # Stripe may send a dispute before the event that records its charge or PaymentIntent
        # as ours (a Checkout Session's): wait for it rather than drop it. A dispute on a charge
        # that never becomes ours fails after the retries, and the operator is alerted.
        raise RetryLater(f"dispute {dispute_id}: its charge is not recorded (yet)")
    _bind(payment, obj, account)
    orders = await orders_of_payment(session, payment.id)
    status = obj.status or "needs_response"
    inserted = (
        await session.execute(
            insert(Dispute)
            .values(
                id=uuid.uuid4(),
                stripe_dispute_id=dispute_id,
                payment_id=payment.id,
                stripe_charge_id=obj.charge or payment.stripe_charge_id,
                stripe_account_id=account,
                amount=obj.amount or payment.amount,
                currency=obj.currency or payment.currency,
                reason=obj.reason,
                status=status,
                is_open=True,
                evidence_due_by=_evidence_due_by(obj),
                orders_before={str(o.id): o.status.value for o in orders},
                stripe_synced_at=observed_at,
            )
            .on_conflict_do_nothing(index_elements=[Dispute.stripe_dispute_id])
            .returning(Dispute.id)
        )
    ).scalar_one_or_none()
    dispute = (
        await session.execute(
            select(Dispute)
            .where(Dispute.stripe_dispute_id == dispute_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    if inserted is not None:
        await transition_orders(
            session, OrderStatus.disputed, now=observed_at, payment_id=payment.id
        )
        await notify_dispute_opened(session, inserted)
    elif not dispute.is_open or is_older(observed_at, dispute.stripe_synced_at):
        return dispute  # closed disputes stay closed; older news changes nothing
    dispute.status = status
    dispute.amount = obj.amount or dispute.amount
    dispute.reason = obj.reason or dispute.reason
    dispute.evidence_due_by = _evidence_due_by(obj) or dispute.evidence_due_by
    dispute.stripe_synced_at = max(observed_at, dispute.stripe_synced_at)
    if status in CLOSED_STATUSES:
        dispute.is_open = False
        dispute.closed_at = observed_at
        await session.flush()
        await _close(session, dispute, payment, orders, observed_at=observed_at)
    await session.flush()
    return dispute


async def _close(
    session: AsyncSession,
    dispute: Dispute,
    payment: Payment,
    orders: list[Order],
    *,
    observed_at: datetime,
) -> None:
    if dispute.status in WON:
        for order_id, before in dispute.orders_before.items():
            previous = OrderStatus(before)
            if previous is not OrderStatus.disputed:
                await transition_orders(
                    session, previous, now=observed_at, order_ids=[uuid.UUID(order_id)]
                )
        logger.info("dispute won", extra={"dispute_id": str(dispute.id)})
        return
    # lost
    await transition_orders(
        session, OrderStatus.refunded, now=observed_at, order_ids=[o.id for o in orders]
    )
    if payment.charge_type is not ChargeType.separate:
        return
    await _recover_vendor_shares(session, dispute, orders)


async def _recover_vendor_shares(
    session: AsyncSession, dispute: Dispute, orders: list[Order]
) -> None:
    """A reversal per transferred order: its vendor share of the disputed amount (spread over
    the orders by what was left unrefunded, then split vendor/fee exactly), capped at what is
    left of its transfer."""
    ordered = sorted(orders, key=lambda o: str(o.id))
    weights = [max(o.amount - o.amount_refunded, 0) for o in ordered]
    if sum(weights) == 0:
        return
    disputed = min(dispute.amount, sum(weights))
    for order, part in zip(ordered, allocate(disputed, weights), strict=True):
        vendor_part = allocate(part, [order.vendor_amount, order.platform_fee])[0]
        transfer = (
            await session.execute(
                select(Transfer).where(
                    Transfer.order_id == order.id, Transfer.status == TransferStatus.paid
                )
            )
        ).scalar_one_or_none()
        if transfer is None or vendor_part <= 0:
            continue  # never released: the held share simply stays with the platform
        already = (
            await session.execute(
                select(func.coalesce(func.sum(TransferReversal.amount), 0)).where(
                    TransferReversal.transfer_id == transfer.id,
                    TransferReversal.status != ReversalStatus.canceled,
                )
            )
        ).scalar_one()
        amount = min(vendor_part, transfer.amount - int(already))
        if amount <= 0:
            continue
        await session.execute(
            insert(TransferReversal)
            .values(
                id=uuid.uuid4(),
                transfer_id=transfer.id,
                order_id=order.id,
                dispute_id=dispute.id,
                amount=amount,
                currency=transfer.currency,
                status=ReversalStatus.pending,
            )
            .on_conflict_do_nothing(constraint="uq_transfer_reversals_dispute_order")
        )
        logger.info(
            "dispute lost: vendor share to recover",
            extra={"dispute_id": str(dispute.id), "order_id": str(order.id), "amount": amount},
        )


async def record_dispute_funds(
    session: AsyncSession, obj: StripeDispute, *, observed_at: datetime, reinstated: bool
) -> bool:
    """`charge.dispute.funds_withdrawn` / `funds_reinstated`: one ledger row each."""
    dispute = (
        await session.execute(select(Dispute).where(Dispute.stripe_dispute_id == obj.id))
    ).scalar_one_or_none()
    if dispute is None:
        return False
    orders = await orders_of_payment(session, dispute.payment_id)
    amount = obj.amount or dispute.amount
    return await ledger.record(
        session,
        kind=MovementKind.dispute_reinstatement if reinstated else MovementKind.dispute_withdrawal,
        amount=amount if reinstated else -amount,
        currency=dispute.currency,
        stripe_id=dispute.stripe_dispute_id,
        occurred_at=observed_at,
        payment_id=dispute.payment_id,
        vendor_id=orders[0].vendor_id if len(orders) == 1 else None,
        details={"dispute_id": str(dispute.id), "reason": dispute.reason},
    )


async def list_disputes(
    session: AsyncSession, *, is_open: bool | None, limit: int, cursor: str | None
) -> DisputePage:
    query = select(Dispute)
    if is_open is not None:
        query = query.where(Dispute.is_open.is_(is_open))
    query = keyset_page(
        query, created_at=Dispute.created_at, row_id=Dispute.id, cursor=cursor, limit=limit
    )
    page, next_cursor = split_page((await session.execute(query)).scalars().all(), limit)
    return DisputePage(items=[DisputeRead.model_validate(d) for d in page], next_cursor=next_cursor)
