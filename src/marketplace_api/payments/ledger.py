"""The ledger rows of a successful charge, written through `ledger.service` (the only writer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.ledger.models import MovementKind
from marketplace_api.ledger.service import movement, record_many
from marketplace_api.orders.models import Order
from marketplace_api.payments.models import Payment

K = MovementKind


async def record_payment_succeeded(
    session: AsyncSession, payment: Payment, orders: Sequence[Order] | None = None
) -> None:
    """The movements of a successful charge, per order: `charge` (+amount), `platform_fee`
    (+fee) and, for destination and direct charges, `transfer` (+vendor_amount: the vendor's
    share settles at charge time). Plus `stripe_fee` (-) when Stripe's fee is known. `orders`:
    all the payment's orders, when the caller has just read them.

    Idempotent; called in the transaction that moves the payment to succeeded. Never commits.
    """
    charge_id = payment.stripe_charge_id or payment.stripe_payment_intent_id or str(payment.id)
    when = payment.succeeded_at or payment.status_updated_at
    if orders is None:
        orders = (
            (await session.execute(select(Order).where(Order.payment_id == payment.id)))
            .scalars()
            .all()
        )
    rows: list[dict[str, Any]] = []
    for order in orders:
        common: dict[str, Any] = {
            "currency": order.currency,
            "occurred_at": when,
            "payment_id": payment.id,
            "order_id": order.id,
            "vendor_id": order.vendor_id,
        }
        rows.append(movement(kind=K.charge, amount=order.amount, stripe_id=charge_id, **common))
        rows.append(
            movement(kind=K.platform_fee, amount=order.platform_fee, stripe_id=charge_id, **common)
        )
        if payment.charge_type is not ChargeType.separate:
            settled_by = payment.stripe_transfer_id or charge_id
            rows.append(
                movement(
                    kind=K.transfer,
                    amount=order.vendor_amount,
                    stripe_id=settled_by,
                    details={"settled_at_charge": payment.charge_type.value},
                    **common,
                )
            )
    if payment.stripe_fee:
        rows.append(
            movement(
                kind=K.stripe_fee,
                amount=-payment.stripe_fee,
                currency=payment.currency,
                stripe_id=charge_id,
                occurred_at=when,
                payment_id=payment.id,
            )
        )
    await record_many(session, rows)
