"""The transfers' periodic jobs: the automatic release of shipped orders, and the retry of
transfers (and the reversals waiting for them) whose Stripe call did not complete."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api import stripe_attempts
from marketplace_api.config import ChargeType, Settings
from marketplace_api.disputes.models import Dispute
from marketplace_api.errors import ProblemError
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.orders.models import FulfilmentStatus, Order
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.refunds.models import RefundRequest, RefundRequestStatus
from marketplace_api.release.service import (
    DUE,
    RELEASABLE_ORDER_STATUSES,
    execute_transfer,
    release_order,
)
from marketplace_api.transfers.models import ReleaseTrigger, Transfer, TransferStatus

logger = logging.getLogger(__name__)


async def release_due_orders(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    *,
    now: datetime,
    settings: Settings,
    limit: int = 200,
) -> int:
    """Auto-release: separate-charge orders shipped at least `AUTO_RELEASE_DAYS` ago, paid, with
    no transfer yet, no open dispute and no open refund request. Returns how many were released
    (a transfer row made or found). Safe to run on several workers at once."""
    cutoff = now - timedelta(days=settings.auto_release_days)
    async with sessionmaker() as session:
        order_ids = list(
            await session.scalars(
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
        ids = list(
            await session.scalars(
                select(Transfer.id)
                .where(Transfer.status.in_(DUE), stripe_attempts.due_for_retry(Transfer, now))
                .order_by(Transfer.next_attempt_at.nulls_first(), Transfer.id)
                .limit(limit)
            )
        )
        await session.commit()
        paid = 0
        for transfer_id in ids:
            transfer = await execute_transfer(session, gateway, transfer_id, now=now)
            paid += transfer.status is TransferStatus.paid
    return paid
