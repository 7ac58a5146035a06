"""`application_fee.refunded`: Stripe's fee refunds reconciled against our split of the refunds.

With `refund_application_fee`, Stripe refunds the application fee in proportion to the refund
and rounds on its own; our split (`refunds.sync.split_refund`) is exact and cumulative. The two
may differ by a minor unit. We recorded our split (`refund_fee_share` of each refund); when
Stripe's total of fee refunds differs, the difference is recorded as a pair of ledger rows that
keep the per-payment invariant (`vendor_amount + platform_fee == amount` in the ledger's terms):
`refund_fee_share` -d (the platform gave back d more of its fee) and `transfer_reversal` +d (so
d less of the vendor's share was taken back: Stripe's reversal and fee refund add up to the
refund).

Compared only when Stripe's list of fee refunds is complete and has as many entries as our
succeeded refunds that refunded fee: an older event (fewer fee refunds) or a refund of ours not
yet succeeded is left to the next event. Keyed `<fee id>:<number of fee refunds>` under the
payment's row lock, and net of earlier adjustments: duplicates and replays record nothing more.
Never commits, never calls Stripe.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.integrations.stripe.objects import ApplicationFee, parse_object
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.orders.models import Order
from marketplace_api.payments.models import Payment
from marketplace_api.refunds.models import Refund, RefundStatus
from marketplace_api.webhooks.binding import verify

logger = logging.getLogger(__name__)

ADJUSTMENT = "application_fee_refund_rounding"


async def reconcile_fee_refunds(
    session: AsyncSession,
    fee: ApplicationFee | Mapping[str, Any],
    *,
    observed_at: datetime,
    account: str | None,
) -> int:
    """Record the difference between Stripe's fee refunds and ours; returns it (0: none)."""
    if not isinstance(fee, ApplicationFee):
        fee = parse_object(ApplicationFee, fee)
    fee_id, charge_id, total = fee.id, fee.charge, fee.amount_refunded
    if not fee_id or not charge_id or total is None:
        logger.info("application fee event without id/charge/amount", extra={"fee": fee_id})
        return 0
    payment = await session.scalar(
        select(Payment)
        .where(Payment.stripe_charge_id == charge_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if payment is None:
        logger.info("application fee of a charge that is not ours", extra={"fee": fee_id})
        return 0
    orders = (await session.execute(select(Order).where(Order.payment_id == payment.id))).all()
    order = orders[0][0] if len(orders) == 1 else None
    verify(
        f"payment {payment.id}",
        fee,
        amount=payment.platform_fee,
        currency=payment.currency,
        account=account,
        expected_account=None,  # application fees are the platform's objects
        references={"account": order.vendor_stripe_account_id if order else None},
    )
    refunds = fee.refunds
    fee_refunds = refunds.data if refunds is not None and not refunds.has_more else None
    if order is None or fee_refunds is None:
        logger.info("application fee refunds not comparable", extra={"fee": fee_id})
        return 0
    count, ours = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(Refund.fee_refunded), 0)).where(
                Refund.payment_id == payment.id,
                Refund.status == RefundStatus.succeeded,
                Refund.fee_refunded > 0,
            )
        )
    ).one()
    if count != len(fee_refunds):
        logger.info(
            "application fee refunds and our refunds not in step yet",
            extra={"fee": fee_id, "stripe": len(fee_refunds), "ours": count},
        )
        return 0
    adjusted = await session.scalar(
        select(func.coalesce(func.sum(MoneyMovement.amount), 0)).where(
            MoneyMovement.payment_id == payment.id,
            MoneyMovement.kind == MovementKind.refund_fee_share,
            MoneyMovement.details["adjustment"].astext == ADJUSTMENT,
        )
    )
    difference = total - int(ours) + int(adjusted or 0)
    if difference == 0:
        return 0
    common: dict[str, Any] = {
        "currency": payment.currency,
        "stripe_id": f"{fee_id}:{count}",
        "occurred_at": observed_at,
        "payment_id": payment.id,
        "order_id": order.id,
        "vendor_id": order.vendor_id,
        "details": {"adjustment": ADJUSTMENT, "stripe_fee_refunded": total, "ours": int(ours)},
    }
    await ledger.record_many(
        session,
        [
            ledger.movement(kind=MovementKind.refund_fee_share, amount=-difference, **common),
            ledger.movement(kind=MovementKind.transfer_reversal, amount=difference, **common),
        ],
    )
    logger.info("application fee refund differs from our split", extra={"fee": fee_id})
    return difference
