"""Release of held funds (separate charges & transfers): exact Stripe calls, one transfer per
order, refused transfers retried, and the rules that block a release."""

from __future__ import annotations

import httpx
import respx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.deps import AppState
from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.refunds.models import RefundRequest
from marketplace_api.release import service
from marketplace_api.release.jobs import release_due_orders, retry_pending_transfers
from marketplace_api.transfers.models import ReleaseTrigger, Transfer, TransferStatus
from tests.conftest import AuthUser
from tests.fixtures.money import (
    NOW,
    days_ago,
    make_paid,
    transfer_handler,
)
from tests.fixtures.stripe import form, stripe_error


async def test_admin_release_sends_the_exact_transfer(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser, stripe_api: respx.MockRouter
) -> None:
    paid = await make_paid(session, amounts=(2000,), fee_bps=1000)
    route = stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)

    response = await client.post(f"/v1/admin/orders/{paid.order.id}/release", headers=admin.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "paid"
    assert body["amount"] == 1800
    assert body["trigger"] == "admin"
    request = route.calls.last.request
    assert form(request) == {
        "amount": "1800",
        "currency": "usd",
        "destination": paid.vendor.stripe_account_id,
        "source_transaction": paid.payment.stripe_charge_id,
        "transfer_group": f"payment_{paid.payment.id}",
        "metadata[order_id]": str(paid.order.id),
        "metadata[payment_id]": str(paid.payment.id),
        "metadata[transfer_id]": body["id"],
    }
    assert request.headers["Idempotency-Key"] == f"transfer:{body['id']}"
    assert "Stripe-Account" not in request.headers
    movement = (
        await session.execute(
            select(MoneyMovement).where(MoneyMovement.kind == MovementKind.transfer)
        )
    ).scalar_one()
    assert (movement.amount, movement.stripe_id) == (1800, body["stripe_transfer_id"])
    assert movement.vendor_id == paid.vendor.id


async def test_release_again_returns_the_same_transfer_without_calling_stripe(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser, stripe_api: respx.MockRouter
) -> None:
    paid = await make_paid(session)
    route = stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    first = await client.post(f"/v1/admin/orders/{paid.order.id}/release", headers=admin.headers)
    second = await client.post(f"/v1/admin/orders/{paid.order.id}/release", headers=admin.headers)
    assert first.json()["id"] == second.json()["id"]
    assert route.call_count == 1


async def test_refused_transfer_stays_failed_and_the_job_retries_it_with_a_new_key(
    session: AsyncSession, app_state: AppState, stripe_api: respx.MockRouter
) -> None:
    """A 4xx (transfers capability inactive) created nothing: the row keeps the error, and the
    retry is a new request (`transfer:<id>:1`). Never a second transfer row."""
    paid = await make_paid(session)
    assert app_state.stripe is not None
    route = stripe_api.post("/v1/transfers").mock(
        side_effect=[
            stripe_error(400, code="insufficient_capabilities_for_transfer", message="no"),
            transfer_handler,
        ]
    )
    transfer = await service.release_order(
        session, app_state.stripe, paid.order.id, trigger=ReleaseTrigger.admin, now=NOW
    )
    assert transfer.status is TransferStatus.failed
    assert transfer.last_error
    assert "insufficient_capabilities_for_transfer" in transfer.last_error
    assert transfer.next_attempt_at is not None
    assert transfer.next_attempt_at > NOW

    sessionmaker = _sessionmaker(session)
    assert await retry_pending_transfers(sessionmaker, app_state.stripe, now=NOW) == 0
    later = transfer.next_attempt_at
    assert await retry_pending_transfers(sessionmaker, app_state.stripe, now=later) == 1

    keys = [c.request.headers["Idempotency-Key"] for c in route.calls]
    assert keys == [f"transfer:{transfer.id}", f"transfer:{transfer.id}:1"]
    row = (await session.execute(select(Transfer))).scalar_one()
    assert row.status is TransferStatus.paid
    assert row.last_error is None


async def test_transfer_timeout_is_retried_with_the_same_key(
    session: AsyncSession, app_state: AppState, stripe_api: respx.MockRouter
) -> None:
    """A 5xx may have created the transfer: the retry must be the same request."""
    paid = await make_paid(session)
    assert app_state.stripe is not None
    route = stripe_api.post("/v1/transfers").mock(
        side_effect=[stripe_error(500, type_="api_error"), transfer_handler]
    )
    transfer = await service.release_order(
        session, app_state.stripe, paid.order.id, trigger=ReleaseTrigger.auto, now=NOW
    )
    assert transfer.status is TransferStatus.pending
    assert transfer.last_error
    assert transfer.next_attempt_at is not None
    sessionmaker = _sessionmaker(session)
    assert (
        await retry_pending_transfers(sessionmaker, app_state.stripe, now=transfer.next_attempt_at)
        == 1
    )
    keys = {c.request.headers["Idempotency-Key"] for c in route.calls}
    assert keys == {f"transfer:{transfer.id}"}


async def test_destination_and_direct_orders_are_not_held(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser, stripe_api: respx.MockRouter
) -> None:
    for charge_type in (ChargeType.destination, ChargeType.direct):
        paid = await make_paid(session, charge_type=charge_type)
        response = await client.post(
            f"/v1/admin/orders/{paid.order.id}/release", headers=admin.headers
        )
        assert response.status_code == 409
        assert response.json()["code"] == "order_not_held"


async def test_disputed_order_is_not_released(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser, stripe_api: respx.MockRouter
) -> None:
    paid = await make_paid(session)
    paid.order.status = OrderStatus.disputed
    await session.commit()
    response = await client.post(f"/v1/admin/orders/{paid.order.id}/release", headers=admin.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "order_disputed"
    assert (await session.execute(select(func.count()).select_from(Transfer))).scalar() == 0


async def test_fully_refunded_order_is_skipped_without_a_stripe_call(
    session: AsyncSession, app_state: AppState, stripe_api: respx.MockRouter
) -> None:
    from marketplace_api.refunds.models import Refund, RefundOrigin, RefundReason, RefundStatus

    paid = await make_paid(session)
    session.add(
        Refund(
            order_id=paid.order.id,
            payment_id=paid.payment.id,
            vendor_id=paid.vendor.id,
            amount=2000,
            currency="usd",
            vendor_share=1800,
            fee_share=200,
            fee_refunded=200,
            reason=RefundReason.requested_by_customer,
            origin=RefundOrigin.admin,
            status=RefundStatus.succeeded,
        )
    )
    paid.order.status = OrderStatus.refunded
    await session.commit()
    assert app_state.stripe is not None
    transfer = await service.release_order(
        session, app_state.stripe, paid.order.id, trigger=ReleaseTrigger.admin, now=NOW
    )
    assert (transfer.status, transfer.amount) == (TransferStatus.skipped, 0)
    assert not stripe_api.calls


async def test_auto_release_only_takes_orders_shipped_long_enough_ago_without_open_requests(
    session: AsyncSession, app_state: AppState, settings: object, stripe_api: respx.MockRouter
) -> None:
    due = await make_paid(session, shipped_at=days_ago(15))
    recent = await make_paid(session, shipped_at=days_ago(3))
    requested = await make_paid(session, shipped_at=days_ago(20))
    unshipped = await make_paid(session)
    session.add(
        RefundRequest(
            order_id=requested.order.id, buyer_id=requested.order.buyer_id, reason="broken"
        )
    )
    await session.commit()
    route = stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    assert app_state.stripe is not None

    released = await release_due_orders(
        _sessionmaker(session), app_state.stripe, now=NOW, settings=app_state.settings
    )

    assert released == 1
    assert route.call_count == 1
    rows = (await session.execute(select(Transfer.order_id, Transfer.trigger))).all()
    assert rows == [(due.order.id, ReleaseTrigger.auto)]
    for other in (recent, requested, unshipped):
        assert (
            await session.execute(select(Order.status).where(Order.id == other.order.id))
        ).scalar() is OrderStatus.paid


def _sessionmaker(session: AsyncSession) -> object:
    """A sessionmaker whose sessions are the test's session (rolled back after the test)."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def make() -> object:
        yield session

    return make


async def test_a_multi_vendor_payment_gets_one_transfer_per_vendor_order(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser, stripe_api: respx.MockRouter
) -> None:
    paid = await make_paid(session, amounts=(1000, 2500))
    route = stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    for order in paid.orders:
        response = await client.post(f"/v1/admin/orders/{order.id}/release", headers=admin.headers)
        assert response.status_code == 200
    sent = sorted((form(c.request)["destination"], form(c.request)["amount"]) for c in route.calls)
    assert sent == sorted(
        [(paid.vendors[0].stripe_account_id, "900"), (paid.vendors[1].stripe_account_id, "2250")]
    )
    groups = {form(c.request)["transfer_group"] for c in route.calls}
    assert groups == {f"payment_{paid.payment.id}"}
