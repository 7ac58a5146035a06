"""Disputes from webhooks: the order is disputed and held, a won dispute puts it back, a lost one
on an already-transferred separate charge recovers the vendor's share by a transfer reversal."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import Any

import httpx
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.deps import AppState
from marketplace_api.disputes.models import Dispute
from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.refunds import service as refunds
from marketplace_api.release.service import release_order
from marketplace_api.transfers.models import ReleaseTrigger, ReversalStatus, TransferReversal
from tests.conftest import AuthUser, make_settings
from tests.fixtures.money import (
    NOW,
    deliver,
    dispute_json,
    make_paid,
    reversal_handler,
    transfer_handler,
)
from tests.fixtures.stripe import event, form


async def _order_status(session: AsyncSession, order: Order) -> OrderStatus:
    value = (await session.execute(select(Order.status).where(Order.id == order.id))).scalar_one()
    return OrderStatus(value)


def _sessions(session: AsyncSession) -> Any:
    @asynccontextmanager
    async def make():  # type: ignore[no-untyped-def]
        yield session

    return make


async def test_dispute_marks_the_order_disputed_blocks_release_and_a_win_restores_it(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser, stripe_api: respx.MockRouter
) -> None:
    paid = await make_paid(session)
    obj = dispute_json(paid)
    now = int(time.time())
    receipt = await deliver(client, event("charge.dispute.created", obj, created=now))
    assert receipt["status"] == "processed"
    assert await _order_status(session, paid.order) is OrderStatus.disputed

    release = await client.post(f"/v1/admin/orders/{paid.order.id}/release", headers=admin.headers)
    assert release.status_code == 409
    assert release.json()["code"] == "order_disputed"
    listed = await client.get("/v1/admin/disputes?open=true", headers=admin.headers)
    assert [d["stripe_dispute_id"] for d in listed.json()["items"]] == [obj["id"]]
    assert listed.json()["items"][0]["evidence_due_by"].startswith("2026-")

    won = obj | {"status": "won"}
    await deliver(client, event("charge.dispute.closed", won, created=now + 10))
    assert await _order_status(session, paid.order) is OrderStatus.paid
    # an older update arriving late changes nothing: a closed dispute stays closed
    await deliver(
        client, event("charge.dispute.updated", obj | {"status": "under_review"}, created=now + 5)
    )
    dispute = (await session.execute(select(Dispute))).scalar_one()
    await session.refresh(dispute)
    assert (dispute.status, dispute.is_open) == ("won", False)
    assert (await client.get("/v1/admin/disputes?open=true", headers=admin.headers)).json()[
        "items"
    ] == []
    assert not stripe_api.calls


async def test_lost_dispute_on_a_transferred_separate_charge_reverses_the_vendor_share(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session)
    stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    assert app_state.stripe is not None
    transfer = await release_order(
        session, app_state.stripe, paid.order.id, trigger=ReleaseTrigger.admin, now=NOW
    )
    route = stripe_api.post(url__regex=r"/v1/transfers/tr_\w+/reversals$").mock(
        side_effect=lambda r: reversal_handler(r, str(transfer.stripe_transfer_id))
    )
    obj = dispute_json(paid)
    now = int(time.time())
    await deliver(client, event("charge.dispute.created", obj, created=now))
    await deliver(client, event("charge.dispute.funds_withdrawn", obj, created=now + 1))
    replay = event("charge.dispute.funds_withdrawn", obj, created=now + 1)
    await deliver(client, replay)
    await deliver(client, replay)  # the same event twice: recorded once
    await deliver(client, event("charge.dispute.closed", obj | {"status": "lost"}, created=now + 9))

    assert await _order_status(session, paid.order) is OrderStatus.refunded
    reversal = (await session.execute(select(TransferReversal))).scalar_one()
    assert (reversal.amount, reversal.status) == (1800, ReversalStatus.pending)
    assert not route.calls  # a webhook handler never calls Stripe: the job makes it

    await refunds.retry_failed_refunds(
        _sessions(session), app_state.stripe, now=NOW, settings=app_state.settings
    )

    request = route.calls.last.request
    dispute = (await session.execute(select(Dispute))).scalar_one()
    assert request.url.path == f"/v1/transfers/{transfer.stripe_transfer_id}/reversals"
    assert form(request) == {
        "amount": "1800",
        "metadata[reversal_id]": str(reversal.id),
        "metadata[order_id]": str(paid.order.id),
        "metadata[transfer_id]": str(transfer.id),
        "metadata[dispute_id]": str(dispute.id),
    }
    assert request.headers["Idempotency-Key"] == f"dispute:{dispute.id}:reversal:{paid.order.id}"
    await session.refresh(reversal)
    assert reversal.status is ReversalStatus.succeeded
    kinds = (
        await session.execute(
            select(MoneyMovement.kind, MoneyMovement.amount).where(
                MoneyMovement.payment_id == paid.payment.id
            )
        )
    ).all()
    assert kinds.count((MovementKind.dispute_withdrawal, -2000)) == 1
    assert (MovementKind.transfer_reversal, -1800) in kinds


async def test_lost_dispute_recovery_can_be_turned_off(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    database_url: str,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session)
    stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    assert app_state.stripe is not None
    await release_order(
        session, app_state.stripe, paid.order.id, trigger=ReleaseTrigger.admin, now=NOW
    )
    obj = dispute_json(paid, status="lost")
    await deliver(client, event("charge.dispute.created", obj))
    settings = make_settings(database_url, reverse_transfer_on_dispute_loss=False)
    await refunds.retry_failed_refunds(
        _sessions(session), app_state.stripe, now=NOW, settings=settings
    )
    reversal = (await session.execute(select(TransferReversal))).scalar_one()
    assert reversal.status is ReversalStatus.canceled
    assert reversal.last_error == "REVERSE_TRANSFER_ON_DISPUTE_LOSS is off"
    assert len(stripe_api.calls) == 1  # only the transfer


async def test_dispute_on_a_direct_charge_arrives_on_the_connect_endpoint(
    client: httpx.AsyncClient, session: AsyncSession, stripe_api: respx.MockRouter
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.direct)
    account = str(paid.vendor.stripe_account_id)
    await deliver(
        client, event("charge.dispute.created", dispute_json(paid), account=account), connect=True
    )
    dispute = (await session.execute(select(Dispute))).scalar_one()
    assert dispute.stripe_account_id == account
    assert await _order_status(session, paid.order) is OrderStatus.disputed


async def test_a_dispute_that_outruns_its_charge_waits_and_is_applied_once_the_charge_is_ours(
    client: httpx.AsyncClient, session: AsyncSession, stripe_api: respx.MockRouter
) -> None:
    """Stripe may send a dispute before the event that records its charge as ours (a Checkout
    Session's PaymentIntent): it is kept pending, never dropped, and applied on the retry."""
    from marketplace_api.payments.models import Payment
    from marketplace_api.webhooks.models import EventStatus, StripeEvent
    from marketplace_api.webhooks.pipeline import process_due_events

    paid = await make_paid(session)
    obj = dispute_json(paid)
    charge_id, payment_id, order_id = paid.payment.stripe_charge_id, paid.payment.id, paid.order.id
    intent_id = paid.payment.stripe_payment_intent_id

    async def order_status() -> str:
        return (
            await session.execute(select(Order.status).where(Order.id == order_id))
        ).scalar_one()

    await session.execute(
        Payment.__table__.update()
        .where(Payment.id == payment_id)
        .values(stripe_charge_id=None, stripe_payment_intent_id="pi_element_only")
    )
    await session.commit()
    receipt = await deliver(client, event("charge.dispute.created", obj, created=int(time.time())))
    assert receipt["status"] == "pending"
    assert await order_status() != OrderStatus.disputed

    await session.execute(
        Payment.__table__.update()
        .where(Payment.id == payment_id)
        .values(stripe_charge_id=charge_id, stripe_payment_intent_id=intent_id)
    )
    await session.execute(StripeEvent.__table__.update().values(next_attempt_at=None))
    await session.commit()
    await process_due_events(_sessions(session), limit=10)
    stored = (await session.execute(select(StripeEvent))).scalar_one()
    await session.refresh(stored)
    assert stored.status is EventStatus.processed
    assert await order_status() == OrderStatus.disputed
    assert not stripe_api.calls
