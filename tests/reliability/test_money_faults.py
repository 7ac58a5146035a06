"""Stripe failing when money moves: the transfer of a release, refunds of each charge type, and
transfer reversals (a refund after the release, a lost dispute).

None of these answer 503: the row is written before the call, so the API answers the row (201/200
with `status=pending` and `last_error`) and the retry job owns the retry. Each test checks that
the row keeps a path (pending with `next_attempt_at`), that nothing happens before it is due, that
the job's retry sends the SAME idempotency key and parameters, and that exactly one Stripe POST
succeeded and one row/ledger movement exists.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx
import pytest
import respx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.config import ChargeType, Settings
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.orders.models import Order
from marketplace_api.refunds.models import Refund, RefundStatus
from marketplace_api.refunds.service import retry_failed_refunds
from marketplace_api.release.jobs import retry_pending_transfers
from marketplace_api.release.service import release_order
from marketplace_api.transfers.models import (
    ReleaseTrigger,
    ReversalStatus,
    Transfer,
    TransferReversal,
    TransferStatus,
)
from tests.conftest import AuthUser
from tests.fixtures.money import (
    NOW,
    Paid,
    deliver,
    dispute_json,
    make_paid,
    refund_handler,
    refund_json,
    reversal_handler,
    transfer_handler,
)
from tests.fixtures.stripe import event, stripe_error
from tests.reliability.faults import FAULTS, Fault, bodies, flaky, keys, successes

T = TypeVar("T")


async def movements(session: AsyncSession, kind: MovementKind) -> list[tuple[int, str | None]]:
    rows = await session.execute(
        select(MoneyMovement.amount, MoneyMovement.stripe_id).where(MoneyMovement.kind == kind)
    )
    return [(int(amount), stripe_id) for amount, stripe_id in rows.all()]


async def fresh(session: AsyncSession, model: type[T], row_id: uuid.UUID) -> T:
    row = await session.get(model, row_id, populate_existing=True)
    assert row is not None
    return row


async def count(session: AsyncSession, model: type) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def _pending_with_a_retry_path(row: Transfer | Refund | TransferReversal, fault: Fault) -> None:
    assert row.last_error is not None
    assert row.last_error.startswith(fault.code)
    assert row.attempts == 1
    assert row.next_attempt_at is not None


# --- transfer create (release) ---------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
async def test_release_transfer_fault_stays_pending_and_the_job_retries_with_the_same_key(
    fault: Fault,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    admin: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session)
    route = stripe_api.post("/v1/transfers").mock(side_effect=flaky(fault, transfer_handler))
    url = f"/v1/admin/orders/{paid.order.id}/release"

    released = await client.post(url, headers=admin.headers)

    assert released.status_code == 200, released.text  # documented: the transfer, with its error
    body = released.json()
    assert body["status"] == "pending"
    assert body["last_error"].startswith(fault.code)
    transfer = await fresh(session, Transfer, uuid.UUID(body["id"]))
    assert transfer.status is TransferStatus.pending
    _pending_with_a_retry_path(transfer, fault)
    due = transfer.next_attempt_at
    assert due is not None

    # Asking again (the admin, the buyer's confirm-delivery) returns the row: no second call.
    again = await client.post(url, headers=admin.headers)
    assert again.json()["id"] == body["id"]
    # Nothing before it is due.
    assert await retry_pending_transfers(sessions, gateway, now=datetime.now(UTC)) == 0
    assert route.call_count == 1

    assert await retry_pending_transfers(sessions, gateway, now=due) == 1

    assert keys(route) == [f"transfer:{transfer.id}"] * 2
    first, second = bodies(route)
    assert first == second
    assert successes(route) == 1
    transfer = await fresh(session, Transfer, transfer.id)
    assert transfer.status is TransferStatus.paid
    assert transfer.stripe_transfer_id == route.calls.last.response.json()["id"]
    assert await count(session, Transfer) == 1
    assert await movements(session, MovementKind.transfer) == [(1800, transfer.stripe_transfer_id)]


# --- refund create, each charge type ---------------------------------------------------------


@pytest.mark.parametrize("charge_type", list(ChargeType), ids=lambda c: c.value)
@pytest.mark.parametrize("fault", FAULTS)
async def test_refund_fault_keeps_the_reservation_pending_and_the_job_refunds_once(
    fault: Fault,
    charge_type: ChargeType,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    admin: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session, charge_type=charge_type)
    route = stripe_api.post("/v1/refunds").mock(side_effect=flaky(fault, refund_handler()))
    url = f"/v1/admin/payments/{paid.payment.id}/refunds"

    made = await client.post(url, json={}, headers=admin.headers)

    assert made.status_code == 201, made.text
    (body,) = made.json()["refunds"]
    assert body["status"] == "pending"
    assert body["stripe_refund_id"] is None
    refund = await fresh(session, Refund, uuid.UUID(body["id"]))
    _pending_with_a_retry_path(refund, fault)
    order = await fresh(session, Order, paid.order.id)
    assert order.amount_refunded == 0  # only when Stripe confirms
    # The pending refund reserves the amount: the admin trying again cannot refund it twice.
    again = await client.post(url, json={}, headers=admin.headers)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "nothing_to_refund"
    assert (
        await retry_failed_refunds(sessions, gateway, now=datetime.now(UTC), settings=settings) == 0
    )

    due = refund.next_attempt_at
    assert due is not None
    assert await retry_failed_refunds(sessions, gateway, now=due, settings=settings) == 1

    assert keys(route) == [f"refund:{refund.id}"] * 2
    first, second = bodies(route)
    assert first == second
    expected_account = paid.vendor.stripe_account_id if charge_type is ChargeType.direct else None
    assert [c.request.headers.get("Stripe-Account") for c in route.calls] == [expected_account] * 2
    assert successes(route) == 1
    refund = await fresh(session, Refund, refund.id)
    assert refund.status is RefundStatus.succeeded
    assert refund.stripe_refund_id == route.calls.last.response.json()["id"]
    assert await count(session, Refund) == 1
    order = await fresh(session, Order, paid.order.id)
    assert order.amount_refunded == 2000
    assert await movements(session, MovementKind.refund) == [(-2000, refund.stripe_refund_id)]


# --- transfer reversals: a refund after the release, a lost dispute ---------------------------


async def _released(
    session: AsyncSession, gateway: StripeGateway, stripe_api: respx.MockRouter
) -> tuple[Paid, Transfer]:
    paid = await make_paid(session)
    stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    transfer = await release_order(
        session, gateway, paid.order.id, trigger=ReleaseTrigger.admin, now=NOW
    )
    assert transfer.status is TransferStatus.paid
    return paid, transfer


def _reversal_route(stripe_api: respx.MockRouter, transfer: Transfer, fault: Fault) -> respx.Route:
    transfer_id = str(transfer.stripe_transfer_id)
    return stripe_api.post(f"/v1/transfers/{transfer_id}/reversals").mock(
        side_effect=flaky(fault, lambda r: reversal_handler(r, transfer_id))
    )


async def _only_reversal(session: AsyncSession) -> TransferReversal:
    result = await session.execute(
        select(TransferReversal).execution_options(populate_existing=True)
    )
    return result.scalar_one()


async def _assert_reversed_once(
    session: AsyncSession, route: respx.Route, transfer: Transfer, key: str
) -> None:
    assert keys(route) == [key] * 2
    first, second = bodies(route)
    assert first == second
    assert successes(route) == 1
    reversal = await _only_reversal(session)
    assert reversal.status is ReversalStatus.succeeded
    assert reversal.stripe_reversal_id == route.calls.last.response.json()["id"]
    row = await fresh(session, Transfer, transfer.id)
    assert row.amount_reversed == 1800
    assert await movements(session, MovementKind.transfer_reversal) == [
        (-1800, reversal.stripe_reversal_id)
    ]


@pytest.mark.parametrize("fault", FAULTS)
async def test_refund_reversal_fault_stays_pending_and_the_job_reverses_once(
    fault: Fault,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    admin: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    paid, transfer = await _released(session, gateway, stripe_api)
    refunds = stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    route = _reversal_route(stripe_api, transfer, fault)

    made = await client.post(
        f"/v1/admin/payments/{paid.payment.id}/refunds", json={}, headers=admin.headers
    )

    assert made.status_code == 201, made.text
    (body,) = made.json()["refunds"]
    assert body["status"] == "succeeded"  # the buyer's money is back; the vendor's share is owed
    reversal = await _only_reversal(session)
    assert reversal.status is ReversalStatus.pending
    _pending_with_a_retry_path(reversal, fault)
    assert (
        await retry_failed_refunds(sessions, gateway, now=datetime.now(UTC), settings=settings) == 0
    )
    due = reversal.next_attempt_at
    assert due is not None

    assert await retry_failed_refunds(sessions, gateway, now=due, settings=settings) == 1

    await _assert_reversed_once(session, route, transfer, f"refund:{body['id']}:reversal")
    assert refunds.call_count == 1


@pytest.mark.parametrize("fault", FAULTS)
async def test_dispute_loss_reversal_fault_stays_pending_and_the_job_reverses_once(
    fault: Fault,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    stripe_api: respx.MockRouter,
) -> None:
    paid, transfer = await _released(session, gateway, stripe_api)
    route = _reversal_route(stripe_api, transfer, fault)
    obj = dispute_json(paid)
    created = int(time.time())
    await deliver(client, event("charge.dispute.created", obj, created=created))
    await deliver(
        client, event("charge.dispute.closed", obj | {"status": "lost"}, created=created + 5)
    )
    reversal = await _only_reversal(session)
    assert reversal.status is ReversalStatus.pending
    assert route.call_count == 0  # webhooks never call Stripe; the job does

    assert await retry_failed_refunds(sessions, gateway, now=NOW, settings=settings) == 1

    reversal = await _only_reversal(session)
    assert reversal.status is ReversalStatus.pending
    _pending_with_a_retry_path(reversal, fault)
    due = reversal.next_attempt_at
    assert due is not None
    assert await retry_failed_refunds(sessions, gateway, now=NOW, settings=settings) == 0

    assert await retry_failed_refunds(sessions, gateway, now=due, settings=settings) == 1

    await _assert_reversed_once(
        session, route, transfer, f"dispute:{reversal.dispute_id}:reversal:{paid.order.id}"
    )


async def test_a_reversal_waits_while_its_refund_is_uncertain(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    admin: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    """A refund after the release timed out: whether Stripe made it is unknown. The vendor's
    share must not be taken back before the refund has succeeded; when Stripe then refuses the
    refund, no reversal is ever made (the buyer got nothing back, so the vendor keeps its share)."""
    paid, transfer = await _released(session, gateway, stripe_api)
    refunds = stripe_api.post("/v1/refunds").mock(
        side_effect=[
            httpx.ReadTimeout,
            stripe_error(400, code="charge_disputed", message="The charge is disputed."),
        ]
    )
    transfer_id = str(transfer.stripe_transfer_id)
    reversals = stripe_api.post(f"/v1/transfers/{transfer_id}/reversals").mock(
        side_effect=lambda r: reversal_handler(r, transfer_id)
    )

    made = await client.post(
        f"/v1/admin/payments/{paid.payment.id}/refunds", json={}, headers=admin.headers
    )
    assert made.status_code == 201, made.text
    refund = await fresh(session, Refund, uuid.UUID(made.json()["refunds"][0]["id"]))
    assert (refund.status, refund.stripe_refund_id) == (RefundStatus.pending, None)
    due = refund.next_attempt_at
    assert due is not None

    # The job runs before the refund's retry is due: the reversal must not go first.
    await retry_failed_refunds(
        sessions, gateway, now=due - timedelta(seconds=30), settings=settings
    )
    assert reversals.call_count == 0

    await retry_failed_refunds(sessions, gateway, now=due, settings=settings)

    refund = await fresh(session, Refund, refund.id)
    assert refund.status is RefundStatus.failed
    assert refunds.call_count == 2
    assert reversals.call_count == 0
    reversal = await _only_reversal(session)
    assert reversal.status is ReversalStatus.canceled
    row = await fresh(session, Transfer, transfer.id)
    assert row.amount_reversed == 0
    assert await movements(session, MovementKind.transfer_reversal) == []


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
async def test_a_reversal_waits_for_a_pending_refund_to_succeed(
    outcome: str,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    admin: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    """Stripe answers a refund `pending` (it can still fail, e.g. `expired_or_canceled_card`).
    The vendor's share is taken back when the refund succeeds, never before; a failed refund
    leaves the vendor paid."""
    paid, transfer = await _released(session, gateway, stripe_api)
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler(status="pending"))
    transfer_id = str(transfer.stripe_transfer_id)
    reversals = stripe_api.post(f"/v1/transfers/{transfer_id}/reversals").mock(
        side_effect=lambda r: reversal_handler(r, transfer_id)
    )
    made = await client.post(
        f"/v1/admin/payments/{paid.payment.id}/refunds", json={}, headers=admin.headers
    )
    assert made.status_code == 201, made.text
    body = made.json()["refunds"][0]
    assert (body["status"], body["stripe_refund_id"] is not None) == ("pending", True)
    await retry_failed_refunds(sessions, gateway, now=datetime.now(UTC), settings=settings)
    assert reversals.call_count == 0

    obj = refund_json(
        amount=2000,
        status=outcome,
        refund_id=body["stripe_refund_id"],
        metadata={"refund_id": body["id"]},
        failure_reason="expired_or_canceled_card" if outcome == "failed" else None,
    )
    await deliver(client, event(f"refund.{'updated' if outcome == 'succeeded' else 'failed'}", obj))
    await retry_failed_refunds(sessions, gateway, now=datetime.now(UTC), settings=settings)
    await retry_failed_refunds(sessions, gateway, now=datetime.now(UTC), settings=settings)

    reversal = await _only_reversal(session)
    row = await fresh(session, Transfer, transfer.id)
    if outcome == "succeeded":
        assert keys(reversals) == [f"refund:{body['id']}:reversal"]
        assert reversal.status is ReversalStatus.succeeded
        assert row.amount_reversed == 1800
    else:
        assert reversals.call_count == 0
        assert reversal.status is ReversalStatus.canceled
        assert row.amount_reversed == 0
        assert await movements(session, MovementKind.transfer_reversal) == []
