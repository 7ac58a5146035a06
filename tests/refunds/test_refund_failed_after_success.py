"""A refund that succeeded and later failed: amounts, order status and the ledger come back
(compensating rows, the ledger is append-only), the vendor's share taken back is shown as held
for the vendor, the operator is alerted, once, whatever the number and order of deliveries."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.deps import AppState
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.notifications.models import Notification
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.payments.models import Payment
from marketplace_api.refunds import service
from marketplace_api.refunds.models import Refund, RefundOrigin, RefundStatus
from marketplace_api.refunds.schemas import RefundCreate
from marketplace_api.release.service import release_order
from marketplace_api.transfers.models import ReleaseTrigger
from tests.conftest import AuthUser
from tests.fixtures.money import (
    NOW,
    deliver,
    make_paid,
    refund_handler,
    refund_json,
    reversal_handler,
    transfer_handler,
)
from tests.fixtures.stripe import event

# (charge type, released before the refund) -> what the vendor is owed back once it failed
SCENARIOS = {
    "destination": (ChargeType.destination, False),
    "direct": (ChargeType.direct, False),
    "separate, not released": (ChargeType.separate, False),
    "separate, released and reversed": (ChargeType.separate, True),
}
FAILED_EVENTS = ("refund.failed", "refund.updated", "charge.refund.updated")


async def _refunded(
    session: AsyncSession,
    app_state: AppState,
    stripe_api: respx.MockRouter,
    charge_type: ChargeType,
    released: bool,
) -> tuple[Any, Refund]:
    paid = await make_paid(session, charge_type=charge_type)
    assert app_state.stripe is not None
    if released:
        stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
        transfer = await release_order(
            session, app_state.stripe, paid.order.id, trigger=ReleaseTrigger.admin, now=NOW
        )
        stripe_api.post(url__regex=rf"/v1/transfers/{transfer.stripe_transfer_id}/reversals$").mock(
            side_effect=lambda r: reversal_handler(r, str(transfer.stripe_transfer_id))
        )
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    refund = await service.create_refund(
        session,
        app_state.stripe,
        app_state.settings,
        paid.order.id,
        RefundCreate(amount=1000),
        origin=RefundOrigin.admin,
        actor_id=None,
        now=NOW,
    )
    assert refund.status is RefundStatus.succeeded
    return paid, refund


async def _movements(session: AsyncSession) -> list[tuple[str, int]]:
    rows = await session.execute(
        select(MoneyMovement.kind, MoneyMovement.amount).order_by(MoneyMovement.seq)
    )
    return [(kind.value, amount) for kind, amount in rows]


@pytest.mark.parametrize("event_type", FAILED_EVENTS)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_refund_failing_after_success_is_undone_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    stripe_api: respx.MockRouter,
    admin: AuthUser,
    scenario: str,
    event_type: str,
) -> None:
    admin_email = admin.user.email
    charge_type, released = SCENARIOS[scenario]
    paid, refund = await _refunded(session, app_state, stripe_api, charge_type, released)
    payment_id, order_id, refund_id = paid.payment.id, paid.order.id, refund.id
    before_refund_rows = await _movements(session)
    obj = refund_json(
        amount=1000,
        status="failed",
        failure_reason="expired_or_canceled_card",
        refund_id=refund.stripe_refund_id,
        metadata={"refund_id": str(refund_id)},
    )
    account = paid.payment.stripe_account_id if charge_type is ChargeType.direct else None
    now = int(time.time())
    failed = event(event_type, obj, account=account, created=now)
    late_success = event("refund.updated", obj | {"status": "succeeded"}, account=account)

    assert (await deliver(client, failed, connect=bool(account)))["status"] == "processed"
    # a redelivery, another event of the same failure, and the older success arriving late
    await deliver(client, failed, connect=bool(account))
    await deliver(client, event("refund.failed", obj, account=account), connect=bool(account))
    await deliver(client, late_success, connect=bool(account))

    row = await session.get(Refund, refund_id, populate_existing=True)
    assert row is not None
    assert (row.status, row.failure_reason) == (RefundStatus.failed, "expired_or_canceled_card")
    payment = await session.get(Payment, payment_id, populate_existing=True)
    order = await session.get(Order, order_id, populate_existing=True)
    assert payment is not None
    assert order is not None
    assert (payment.amount_refunded, order.amount_refunded, order.status) == (
        0,
        0,
        OrderStatus.paid,
    )
    # Compensating rows, once: every row of the success is answered by its opposite, except a
    # vendor share that was taken back (destination, released separate): held for the vendor.
    rows = await _movements(session)
    added = rows[len(before_refund_rows) :]
    fee_part = refund.fee_refunded
    expected = [("refund", 1000)] + ([("refund_fee_share", fee_part)] if fee_part else [])
    owed = 0
    if charge_type is ChargeType.direct:
        expected.append(("transfer_reversal", 1000 - fee_part))
    elif charge_type is ChargeType.destination:
        owed = 1000 - fee_part
    elif released:
        owed = 900  # the vendor share of 1000 with a 10 % fee, reversed at refund time
    assert added == expected
    balance = await ledger.payment_balance(session, payment)
    assert balance.charge + balance.refunds == paid.payment.amount
    held_before = 0 if charge_type is not ChargeType.separate or released else 1800
    assert balance.held == held_before + owed
    # The operator is told once, with what the vendor is owed.
    alerts = (
        await session.execute(
            select(Notification.recipient, Notification.context).where(
                Notification.kind == "operator_alert"
            )
        )
    ).all()
    assert [(r, c["details"]["owed_to_vendor"]) for r, c in alerts] == [(admin_email, str(owed))]


async def test_failed_refund_compensation_keeps_the_refund_reservation_released(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    stripe_api: respx.MockRouter,
) -> None:
    """Once failed, the order can be refunded again in full (its reservation is released)."""
    paid, refund = await _refunded(session, app_state, stripe_api, ChargeType.destination, False)
    order_id = paid.order.id
    obj = refund_json(
        amount=1000,
        status="failed",
        refund_id=refund.stripe_refund_id,
        metadata={"refund_id": str(refund.id)},
    )
    await deliver(client, event("refund.failed", obj))
    assert app_state.stripe is not None
    again = await service.create_refund(
        session,
        app_state.stripe,
        app_state.settings,
        order_id,
        RefundCreate(),
        origin=RefundOrigin.admin,
        actor_id=None,
        now=NOW,
    )
    assert (again.amount, again.status) == (2000, RefundStatus.succeeded)
    kinds = (
        await session.execute(
            select(MoneyMovement.kind).where(MoneyMovement.kind == MovementKind.refund)
        )
    ).scalars()
    assert len(list(kinds)) == 3  # the first, its compensation, the new one
