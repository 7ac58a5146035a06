"""A refund that succeeded and later failed (Stripe's `refund.failed`, or `refund.updated` /
`charge.refund.updated` with status `failed`, e.g. the buyer's card was closed): the money never
reached the buyer and came back to Stripe, so the success's effects are undone, once.

- the payment's and the order's `amount_refunded` go back down, and the order's status follows
  (`paid` when nothing is refunded any more, else `partially_refunded`);
- the ledger is append-only: compensating rows (`refund` +amount, `refund_fee_share` +fee part,
  each with the Stripe id `<re_…>:failed`) cancel the success's rows;
- the vendor's share. Direct charges: the refund had come out of the vendor's own balance and
  Stripe returns it there, so the `transfer_reversal` row is compensated too. Destination
  charges (`reverse_transfer`) and separate charges whose reversal already succeeded: the
  vendor's share was taken back and now sits with the platform. It is NOT sent back
  automatically: a vendor has one transfer per order in our model, a failed refund is usually
  retried by the operator with another card or method (which would take the share back again),
  and Stripe may still be reversing or re-crediting on its side; paying it out by itself risks
  paying the vendor twice. The ledger shows it as `held` for the vendor and the operator gets an
  explicit alert with the amount to transfer back or refund again. A separate charge's reversal
  that was still pending is cancelled by the caller, so nothing is taken from the vendor;
- the operator is alerted in every case (one alert per refund).

Called by `refunds.sync.apply_refund_object` under the refund's row lock, right after the
conditional `succeeded → failed` move (`state.fail_after_success`): exactly once whatever the
number or order of deliveries. Never commits, never calls Stripe.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MovementKind
from marketplace_api.notifications.notify import notify_operator
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.orders.state import transition_orders
from marketplace_api.payments.models import Payment
from marketplace_api.refunds.models import Refund
from marketplace_api.transfers.models import ReversalStatus, TransferReversal

logger = logging.getLogger(__name__)


async def undo_success(
    session: AsyncSession, refund: Refund, payment: Payment, *, observed_at: datetime
) -> None:
    """Undo what `sync._on_succeeded` (and a succeeded reversal) did for `refund`."""
    await session.execute(
        update(Payment)
        .where(Payment.id == payment.id)
        .values(amount_refunded=func.greatest(Payment.amount_refunded - refund.amount, 0))
        .execution_options(synchronize_session=False)
    )
    refunded, status, vendor_id = (
        await session.execute(
            update(Order)
            .where(Order.id == refund.order_id)
            .values(amount_refunded=func.greatest(Order.amount_refunded - refund.amount, 0))
            .returning(Order.amount_refunded, Order.status, Order.vendor_id)
            .execution_options(synchronize_session=False)
        )
    ).one()
    if status in (OrderStatus.refunded, OrderStatus.partially_refunded):
        to = OrderStatus.paid if refunded == 0 else OrderStatus.partially_refunded
        if to is not status:
            await transition_orders(session, to, now=observed_at, order_ids=[refund.order_id])

    stripe_id = f"{refund.stripe_refund_id or refund.id}:failed"
    common: dict[str, Any] = {
        "currency": refund.currency,
        "stripe_id": stripe_id,
        "occurred_at": observed_at,
        "payment_id": refund.payment_id,
        "order_id": refund.order_id,
        "vendor_id": vendor_id,
    }
    details = {"refund_id": str(refund.id), "compensates": "refund failed after success"}
    rows = [
        ledger.movement(kind=MovementKind.refund, amount=refund.amount, details=details, **common)
    ]
    if refund.fee_refunded:
        rows.append(
            ledger.movement(
                kind=MovementKind.refund_fee_share,
                amount=refund.fee_refunded,
                details=details,
                **common,
            )
        )
    vendor_part = refund.amount - refund.fee_refunded
    owed_to_vendor = 0
    if payment.charge_type is ChargeType.direct:
        if vendor_part:
            rows.append(
                ledger.movement(
                    kind=MovementKind.transfer_reversal,
                    amount=vendor_part,
                    details=details,
                    **common,
                )
            )
    elif payment.charge_type is ChargeType.destination:
        owed_to_vendor = vendor_part
    else:
        owed_to_vendor = int(
            await session.scalar(
                select(func.coalesce(func.sum(TransferReversal.amount), 0)).where(
                    TransferReversal.refund_id == refund.id,
                    TransferReversal.status == ReversalStatus.succeeded,
                )
            )
            or 0
        )
    await ledger.record_many(session, rows)

    logger.error(
        "a succeeded refund failed: its effects were undone",
        extra={"refund_id": str(refund.id), "owed_to_vendor": owed_to_vendor},
    )
    message = "Stripe reported that a refund which had succeeded failed; the buyer was not repaid."
    if owed_to_vendor:
        message += (
            " The vendor's share had been taken back for it and is now held by the platform:"
            " transfer it back to the vendor, or refund the buyer another way."
        )
    await notify_operator(
        session,
        f"refund:{refund.id}:failed_after_success",
        "A refund failed after it had succeeded",
        message,
        {
            "refund_id": refund.id,
            "stripe_refund_id": refund.stripe_refund_id,
            "payment_id": refund.payment_id,
            "order_id": refund.order_id,
            "amount": refund.amount,
            "currency": refund.currency,
            "owed_to_vendor": owed_to_vendor,
            "failure_reason": refund.failure_reason,
        },
    )
