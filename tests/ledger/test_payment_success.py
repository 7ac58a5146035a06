"""The success of a payment writes its charge, fee (and, for destination/direct charges, the
vendor's settled share) to the ledger, once, from the payment state machine itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.integrations.stripe.objects import PaymentIntent, parse_object
from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.orders.models import OrderStatus
from marketplace_api.payments.models import PaymentStatus
from marketplace_api.payments.state import apply_payment_intent
from tests.fixtures.money import NOW, make_paid
from tests.fixtures.stripe import stripe_id


async def test_payment_success_records_charge_fee_and_settled_share_once(
    session: AsyncSession,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination, record_ledger=False)
    payment = paid.payment
    payment.status = PaymentStatus.requires_payment
    payment.succeeded_at = None
    payment.stripe_charge_id = None
    payment.stripe_transfer_id = None
    paid.order.status = OrderStatus.pending_payment
    await session.commit()
    charge_id, transfer_id = stripe_id("ch"), stripe_id("tr")
    intent: dict[str, Any] = {
        "id": payment.stripe_payment_intent_id,
        "object": "payment_intent",
        "status": "succeeded",
        "amount": 2000,
        "currency": "usd",
        "metadata": {"payment_id": str(payment.id)},
        "latest_charge": {
            "id": charge_id,
            "transfer": transfer_id,
            "balance_transaction": {"id": stripe_id("txn"), "fee": 88},
        },
    }

    parsed = parse_object(PaymentIntent, intent)
    await apply_payment_intent(session, parsed, observed_at=NOW)
    await session.commit()
    await apply_payment_intent(session, parsed, observed_at=NOW)  # a replayed event
    await session.commit()

    rows = (
        await session.execute(
            select(MoneyMovement.kind, MoneyMovement.amount, MoneyMovement.stripe_id).order_by(
                MoneyMovement.seq
            )
        )
    ).all()
    assert rows == [
        (MovementKind.charge, 2000, charge_id),
        (MovementKind.platform_fee, 200, charge_id),
        (MovementKind.transfer, 1800, transfer_id),
        (MovementKind.stripe_fee, -88, charge_id),
    ]
