"""Stripe did the work, then the process died before the COMMIT that records it.

`crash_on_commit` makes the commit after Stripe's 200 fail (`SimulatedCrash`), so the answer is
lost exactly as it would be if the process died. Then the design's repair path runs — the client's
retry with the same `Idempotency-Key` (checkout), the retry jobs (transfers, refunds) or the
webhook Stripe sends anyway — and the test checks that the row ends with the object Stripe made
the first time, that any second POST carried the same idempotency key (Stripe replays the same
object, which the mocks model by deriving the id from the key), and that the money moved once.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from marketplace_api import stripe_attempts as attempts
from marketplace_api.catalog.models import Listing
from marketplace_api.config import Settings
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.orders.models import Order
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.service import expire_reservations
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
from marketplace_api.vendors.models import Vendor
from tests.conftest import AuthUser
from tests.fixtures import accounts as vendor_factories
from tests.fixtures.catalog import make_listing, make_vendor, payment_intent
from tests.fixtures.money import (
    NOW,
    deliver,
    make_paid,
    refund_handler,
    reversal_handler,
    transfer_handler,
)
from tests.fixtures.stripe import event, form, ok
from tests.fixtures.stripe_mocks import (
    checkout_session_handler,
    create_intent_handler,
    mock_create_intent,
)
from tests.idempotency.holders import hold_key
from tests.reliability.faults import (
    SimulatedCrash,
    arming,
    crash_on_commit,
    keys,
    stable_id,
    successes,
)
from tests.reliability.test_vendor_faults import account_handler, link_handler

REPAIRS = ["job", "webhook"]


async def movements(session: AsyncSession, kind: MovementKind) -> list[tuple[int, str | None]]:
    rows = await session.execute(
        select(MoneyMovement.amount, MoneyMovement.stripe_id).where(MoneyMovement.kind == kind)
    )
    return [(int(a), s) for a, s in rows.all()]


async def count(session: AsyncSession, model: type) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# --- checkout: the PaymentIntent was created, its id was not recorded -------------------------


async def test_checkout_crash_after_the_intent_is_created_is_resumed_by_the_clients_retry(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, price=2500, stock=3)
    body = {"items": [{"listing_id": str(listing.id), "quantity": 1}]}
    headers = {**buyer.headers, "Idempotency-Key": f"checkout-{uuid.uuid4()}"}
    buyer_id = buyer.id  # the crash's rollback expires the ORM objects of the session

    with crash_on_commit(session) as crash:
        route = mock_create_intent(stripe_api, side_effect=arming(create_intent_handler, crash))
        with pytest.raises(SimulatedCrash):
            await client.post("/v1/buyer/orders", json=body, headers=headers)
        assert crash.fired == 1
    await session.rollback()
    created_at_stripe = route.calls.last.response.json()["id"]

    payment = (
        await session.execute(select(Payment).execution_options(populate_existing=True))
    ).scalar_one()
    assert payment.status is PaymentStatus.requires_payment
    assert payment.stripe_payment_intent_id is None  # the answer was lost
    # While another process holds the key (its lock connection is alive), a retry is told to
    # wait; once that process is gone (its connection closed), the retry takes over at once.
    async with hold_key(engine, buyer_id, headers["Idempotency-Key"]):
        busy = await client.post("/v1/buyer/orders", json=body, headers=headers)
    assert busy.status_code == 409
    assert busy.json()["code"] == "idempotency_key_in_use"

    retried = await client.post("/v1/buyer/orders", json=body, headers=headers)

    assert retried.status_code == 201, retried.text
    assert retried.json()["payment_id"] == str(payment.id)
    assert keys(route) == [f"payment:{payment.id}:create"] * 2
    await session.refresh(payment)
    assert payment.stripe_payment_intent_id == created_at_stripe  # the same PaymentIntent
    assert await count(session, Payment) == 1


# --- release: the transfer was made, the row still says pending -------------------------------


@pytest.mark.parametrize("repair", REPAIRS)
async def test_release_crash_after_the_transfer_is_made_is_repaired_without_a_second_transfer(
    repair: str,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session)
    order_id = paid.order.id

    with crash_on_commit(session) as crash:
        route = stripe_api.post("/v1/transfers").mock(side_effect=arming(transfer_handler, crash))
        with pytest.raises(SimulatedCrash):
            await release_order(session, gateway, order_id, trigger=ReleaseTrigger.auto, now=NOW)
    await session.rollback()
    made = route.calls.last.response.json()

    transfer = (
        await session.execute(select(Transfer).execution_options(populate_existing=True))
    ).scalar_one()
    assert transfer.status is TransferStatus.pending
    assert transfer.stripe_transfer_id is None
    # The claim's lease keeps the job away while the crashed caller might still be running.
    assert transfer.next_attempt_at == NOW + attempts.LEASE
    assert await retry_pending_transfers(sessions, gateway, now=NOW) == 0
    assert route.call_count == 1

    if repair == "webhook":  # Stripe's `transfer.created` carries our transfer_id
        await deliver(client, event("transfer.created", made))
    paid_by_job = await retry_pending_transfers(sessions, gateway, now=NOW + attempts.LEASE)

    assert paid_by_job == (1 if repair == "job" else 0)
    assert keys(route) == [f"transfer:{transfer.id}"] * route.call_count
    assert route.call_count == (2 if repair == "job" else 1)
    assert {c.response.json()["id"] for c in route.calls} == {made["id"]}
    await session.refresh(transfer)
    assert transfer.status is TransferStatus.paid
    assert transfer.stripe_transfer_id == made["id"]
    assert await count(session, Transfer) == 1
    assert await movements(session, MovementKind.transfer) == [(1800, made["id"])]


# --- refund: Stripe refunded, the row still says pending --------------------------------------


@pytest.mark.parametrize("repair", REPAIRS)
async def test_refund_crash_after_stripe_refunded_is_repaired_without_a_second_refund(
    repair: str,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    admin: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session)
    order_id = paid.order.id
    url = f"/v1/admin/payments/{paid.payment.id}/refunds"

    with crash_on_commit(session) as crash:
        route = stripe_api.post("/v1/refunds").mock(side_effect=arming(refund_handler(), crash))
        with pytest.raises(SimulatedCrash):
            await client.post(url, json={}, headers=admin.headers)
    await session.rollback()
    made = route.calls.last.response.json()

    refund = (
        await session.execute(select(Refund).execution_options(populate_existing=True))
    ).scalar_one()
    assert refund.status is RefundStatus.pending
    assert refund.stripe_refund_id is None
    due = refund.next_attempt_at  # the claim's lease: due when it runs out
    assert due is not None
    # The reservation holds: a new refund of the order is refused, not made twice.
    again = await client.post(url, json={}, headers=admin.headers)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "nothing_to_refund"

    if repair == "webhook":  # `refund.created` carries our refund_id
        await deliver(client, event("refund.created", made))
    attempted = await retry_failed_refunds(sessions, gateway, now=due, settings=settings)

    assert attempted == (1 if repair == "job" else 0)
    assert route.call_count == (2 if repair == "job" else 1)
    assert keys(route) == [f"refund:{refund.id}"] * route.call_count
    assert {c.response.json()["id"] for c in route.calls} == {made["id"]}
    await session.refresh(refund)
    assert refund.status is RefundStatus.succeeded
    assert refund.stripe_refund_id == made["id"]
    assert await count(session, Refund) == 1
    order = await session.get(Order, order_id, populate_existing=True)
    assert order is not None
    assert order.amount_refunded == 2000
    assert await movements(session, MovementKind.refund) == [(-2000, made["id"])]


# --- vendor setup: the account was created, not stored ----------------------------------------


async def test_setup_crash_after_the_account_is_created_stores_the_same_account_on_retry(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await vendor_factories.make_vendor(session, user=vendor_user.user)
    vendor_id = vendor.id
    stripe_api.post("/v1/account_links").mock(side_effect=link_handler)

    with crash_on_commit(session) as crash:
        route = stripe_api.post("/v1/accounts").mock(side_effect=arming(account_handler, crash))
        with pytest.raises(SimulatedCrash):
            await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)
    await session.rollback()
    made = route.calls.last.response.json()
    row = await session.get(Vendor, vendor_id, populate_existing=True)
    assert row is not None
    assert row.stripe_account_id is None

    retried = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)

    assert retried.status_code == 200, retried.text
    assert keys(route) == [f"vendor:{vendor_id}:account"] * 2
    assert successes(route) == 2  # Stripe answered twice ... with ONE account
    assert {c.response.json()["id"] for c in route.calls} == {made["id"]}
    await session.refresh(row)
    assert row.stripe_account_id == made["id"]


# --- reversal of a refund after the release: reversed at Stripe, not recorded -----------------


async def test_reversal_crash_after_stripe_reversed_is_repaired_by_the_job_with_the_same_key(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    admin: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session)
    payment_id = paid.payment.id
    stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    transfer = await release_order(
        session, gateway, paid.order.id, trigger=ReleaseTrigger.admin, now=NOW
    )
    transfer_id, stripe_transfer_id = transfer.id, str(transfer.stripe_transfer_id)
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())

    with crash_on_commit(session) as crash:
        route = stripe_api.post(f"/v1/transfers/{stripe_transfer_id}/reversals").mock(
            side_effect=arming(lambda r: reversal_handler(r, stripe_transfer_id), crash)
        )
        with pytest.raises(SimulatedCrash):
            await client.post(
                f"/v1/admin/payments/{payment_id}/refunds", json={}, headers=admin.headers
            )
    await session.rollback()
    made = route.calls.last.response.json()

    reversal = (
        await session.execute(select(TransferReversal).execution_options(populate_existing=True))
    ).scalar_one()
    assert reversal.status is ReversalStatus.pending
    assert reversal.stripe_reversal_id is None
    due = reversal.next_attempt_at  # the claim's lease
    assert due is not None
    assert (
        await retry_failed_refunds(
            sessions, gateway, now=due - timedelta(seconds=1), settings=settings
        )
        == 0
    )

    await retry_failed_refunds(sessions, gateway, now=due, settings=settings)

    assert keys(route) == [f"refund:{reversal.refund_id}:reversal"] * 2
    assert {c.response.json()["id"] for c in route.calls} == {made["id"]}
    await session.refresh(reversal)
    assert reversal.status is ReversalStatus.succeeded
    assert reversal.stripe_reversal_id == made["id"]
    row = await session.get(Transfer, transfer_id, populate_existing=True)
    assert row is not None
    assert row.amount_reversed == 1800
    assert await movements(session, MovementKind.transfer_reversal) == [(-1800, made["id"])]


# --- expiry: cancelled at Stripe, the stock release not committed ------------------------------


async def test_expiry_crash_after_stripe_cancelled_is_finished_by_the_next_run(
    client: httpx.AsyncClient,
    session: AsyncSession,
    gateway: StripeGateway,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, price=2500, stock=3)
    listing_id = listing.id
    mock_create_intent(stripe_api)
    placed = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing_id), "quantity": 1}]},
        headers=buyer.headers,
    )
    assert placed.status_code == 201, placed.text
    payment = (await session.execute(select(Payment))).scalar_one()
    payment_id, intent_id = payment.id, str(payment.stripe_payment_intent_id)
    after_expiry = payment.reservation_expires_at + timedelta(seconds=1)

    def cancelled(_: httpx.Request) -> httpx.Response:
        return ok(payment_intent(amount=2500, status="canceled", intent_id=intent_id))

    with crash_on_commit(session) as crash:
        route = stripe_api.post(f"/v1/payment_intents/{intent_id}/cancel").mock(
            side_effect=arming(cancelled, crash)
        )
        with pytest.raises(SimulatedCrash):
            await expire_reservations(session, gateway, now=after_expiry)
    await session.rollback()

    async def state() -> tuple[PaymentStatus, int]:
        row = await session.get(Payment, payment_id, populate_existing=True)
        listing_row = await session.get(Listing, listing_id, populate_existing=True)
        assert row is not None
        assert listing_row is not None
        return row.status, listing_row.stock_quantity

    assert await state() == (PaymentStatus.requires_payment, 2)  # still reserved, still due

    assert await expire_reservations(session, gateway, now=after_expiry) == 1

    assert keys(route) == [f"payment:{payment_id}:cancel"] * 2
    assert await state() == (PaymentStatus.expired, 3)  # restored exactly once


# --- Checkout Session: created at Stripe, not recorded ----------------------------------------


def _stable_session(request: httpx.Request) -> httpx.Response:
    """A Checkout Session answer whose id derives from the key, as Stripe's replay would."""
    body = checkout_session_handler(request).json()
    session_id = stable_id("cs_test", request)
    body.update(id=session_id, url=f"https://checkout.stripe.com/c/pay/{session_id}")
    return ok(body)


async def test_checkout_session_crash_is_resumed_with_the_same_session(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, price=2500, stock=3)
    mock_create_intent(stripe_api)
    placed = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=buyer.headers,
    )
    assert placed.status_code == 201, placed.text
    payment_id = uuid.UUID(placed.json()["payment_id"])
    url = f"/v1/buyer/orders/{placed.json()['orders'][0]['id']}/checkout-session"
    headers = buyer.headers

    with crash_on_commit(session) as crash:
        route = stripe_api.post("/v1/checkout/sessions").mock(
            side_effect=arming(_stable_session, crash)
        )
        with pytest.raises(SimulatedCrash):
            await client.post(url, headers=headers)
    await session.rollback()
    made = route.calls.last.response.json()
    payment = await session.get(Payment, payment_id, populate_existing=True)
    assert payment is not None
    assert payment.checkout_session_id is None

    retried = await client.post(url, headers=headers)

    assert retried.status_code == 200, retried.text
    assert retried.json()["session_id"] == made["id"]
    assert keys(route) == [f"payment:{payment_id}:checkout_session:1"] * 2
    first, second = (form(c.request) for c in route.calls)
    assert first == second
    await session.refresh(payment)
    assert payment.checkout_session_id == made["id"]
