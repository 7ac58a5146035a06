"""Refund webhooks: Stripe's refund status reaches our rows once, in any order; refunds made in
the dashboard are adopted; events that outrun our commit wait."""

from __future__ import annotations

import time
import uuid

import httpx
import respx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.deps import AppState
from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.refunds import service
from marketplace_api.refunds.models import Refund, RefundOrigin, RefundStatus
from marketplace_api.refunds.schemas import RefundCreate
from tests.fixtures.money import (
    NOW,
    deliver,
    make_paid,
    refund_handler,
    refund_json,
)
from tests.fixtures.stripe import event


async def _refund_moves(session: AsyncSession) -> int:
    query = select(func.count()).where(MoneyMovement.kind == MovementKind.refund)
    return int((await session.execute(query)).scalar_one())


async def test_pending_refund_succeeds_by_webhook_once_whatever_the_order(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    order_id = paid.order.id
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler(status="pending"))
    assert app_state.stripe is not None
    refund = await service.create_refund(
        session,
        app_state.stripe,
        app_state.settings,
        order_id,
        RefundCreate(amount=600),
        origin=RefundOrigin.admin,
        actor_id=None,
        now=NOW,
    )
    assert refund.status is RefundStatus.pending
    assert refund.stripe_refund_id
    obj = refund_json(
        amount=600,
        status="succeeded",
        refund_id=refund.stripe_refund_id,
        metadata={"refund_id": str(refund.id)},
    )
    now = int(time.time())
    succeeded = event("refund.updated", obj, created=now)
    assert (await deliver(client, succeeded))["status"] == "processed"
    assert (await deliver(client, succeeded))["duplicate"] is True
    await deliver(client, event("charge.refunded", {"id": "ch_1", "refunds": {"data": [obj]}}))
    await deliver(client, event("refund.created", obj | {"status": "pending"}, created=now - 5))

    row = await session.get(Refund, refund.id, populate_existing=True)
    assert row is not None
    assert row.status is RefundStatus.succeeded
    order = await session.get(Order, order_id, populate_existing=True)
    assert order is not None
    assert (order.amount_refunded, order.status) == (600, OrderStatus.partially_refunded)
    assert await _refund_moves(session) == 1


async def test_failed_refund_releases_its_reservation(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    order_id = paid.order.id
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler(status="pending"))
    assert app_state.stripe is not None
    refund = await service.create_refund(
        session,
        app_state.stripe,
        app_state.settings,
        order_id,
        RefundCreate(),
        origin=RefundOrigin.admin,
        actor_id=None,
        now=NOW,
    )
    obj = refund_json(
        amount=2000,
        status="failed",
        failure_reason="expired_or_canceled_card",
        refund_id=refund.stripe_refund_id,
        metadata={"refund_id": str(refund.id)},
    )
    await deliver(client, event("refund.failed", obj))
    row = await session.get(Refund, refund.id, populate_existing=True)
    assert row is not None
    assert (row.status, row.failure_reason) == (RefundStatus.failed, "expired_or_canceled_card")
    assert await _refund_moves(session) == 0
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
    assert again.amount == 2000


async def test_refund_made_in_the_dashboard_is_adopted(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    obj = refund_json(
        amount=500,
        status="succeeded",
        payment_intent=paid.payment.stripe_payment_intent_id,
        charge=paid.payment.stripe_charge_id,
    )
    await deliver(client, event("refund.created", obj))
    await deliver(client, event("refund.updated", obj))
    refund = (await session.execute(select(Refund))).scalar_one()
    assert (refund.origin, refund.status, refund.amount) == (
        RefundOrigin.stripe,
        RefundStatus.succeeded,
        500,
    )
    assert (refund.vendor_share, refund.fee_share) == (450, 50)
    assert await _refund_moves(session) == 1


async def test_refund_event_naming_an_uncommitted_refund_waits(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    obj = refund_json(amount=100, metadata={"refund_id": str(uuid.uuid4())})
    receipt = await deliver(client, event("refund.updated", obj))
    assert receipt["status"] == "pending"
