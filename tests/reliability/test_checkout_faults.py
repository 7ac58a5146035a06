"""Stripe failing during checkout, cancel, expiry and the hosted Checkout page.

Each test injects one fault (5xx, 429, timeout, connection reset) into one Stripe call, checks the
API's answer and what is left in the database, then retries the way the design says (the client
with the same `Idempotency-Key`, or the expiry job) and checks that the retry sent the SAME Stripe
idempotency key and parameters and that the stock moved exactly once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.catalog.models import Listing
from marketplace_api.config import ChargeType
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.service import expire_reservations
from marketplace_api.reconcile.service import reconcile
from tests.conftest import AuthUser
from tests.fixtures.catalog import make_listing, make_vendor, payment_intent
from tests.fixtures.stripe import STRIPE_API_BASE, ok, stripe_error
from tests.fixtures.stripe_mocks import (
    checkout_session_handler,
    create_intent_handler,
    mock_create_intent,
)
from tests.reliability.faults import (
    FAULTS,
    Fault,
    assert_problem,
    bodies,
    flaky,
    keys,
    successes,
)
from tests.webhooks.reconcile_mocks import mock_active_accounts, mock_nothing_listed

STOCK = 3


async def stock(session: AsyncSession, listing_id: uuid.UUID) -> int:
    value = await session.scalar(
        select(Listing.stock_quantity)
        .where(Listing.id == listing_id)
        .execution_options(populate_existing=True)
    )
    assert value is not None
    return value


async def only_payment(session: AsyncSession) -> Payment:
    result = await session.execute(select(Payment).execution_options(populate_existing=True))
    return result.scalar_one()


async def order_statuses(session: AsyncSession, payment_id: uuid.UUID) -> set[OrderStatus]:
    rows = await session.execute(
        select(Order.status)
        .where(Order.payment_id == payment_id)
        .execution_options(populate_existing=True)
    )
    return set(rows.scalars())


async def _listing(session: AsyncSession, charge_type: ChargeType | None = None) -> uuid.UUID:
    vendor = await make_vendor(session, charge_type=charge_type)
    listing = await make_listing(session, vendor, price=2500, stock=STOCK)
    return listing.id


async def _checkout(
    client: httpx.AsyncClient, buyer: AuthUser, listing_id: uuid.UUID, key: str | None = None
) -> httpx.Response:
    headers = dict(buyer.headers)
    if key:
        headers["Idempotency-Key"] = key
    return await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing_id), "quantity": 1}]},
        headers=headers,
    )


def _cancel_handler(request: httpx.Request) -> httpx.Response:
    intent_id = request.url.path.split("/")[3]
    return ok(payment_intent(amount=2500, status="canceled", intent_id=intent_id))


# --- PaymentIntent create (checkout) -------------------------------------------------------------


@pytest.mark.parametrize("charge_type", list(ChargeType), ids=lambda c: c.value)
@pytest.mark.parametrize("fault", FAULTS)
async def test_checkout_intent_create_fault_keeps_the_reservation_and_the_retry_resumes(
    fault: Fault,
    charge_type: ChargeType,
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    listing_id = await _listing(session, charge_type)
    route = mock_create_intent(stripe_api, side_effect=flaky(fault, create_intent_handler))
    key = f"checkout-{uuid.uuid4()}"

    failed = await _checkout(client, buyer, listing_id, key)

    assert_problem(failed, fault)
    payment = await only_payment(session)
    # Reserved for a payment with a path to resolution: retry with the key, or the expiry job.
    assert payment.status is PaymentStatus.requires_payment
    assert payment.stripe_payment_intent_id is None
    assert payment.reservation_expires_at > datetime.now(UTC)
    assert await order_statuses(session, payment.id) == {OrderStatus.pending_payment}
    assert await stock(session, listing_id) == STOCK - 1

    retried = await _checkout(client, buyer, listing_id, key)

    assert retried.status_code == 201, retried.text
    assert retried.json()["payment_id"] == str(payment.id)
    assert retried.json()["client_secret"]
    assert keys(route) == [f"payment:{payment.id}:create"] * 2
    first, second = bodies(route)
    assert first == second  # Stripe requires the same parameters for a replayed key
    accounts = [c.request.headers.get("Stripe-Account") for c in route.calls]
    assert accounts == [payment.stripe_account_id] * 2  # direct charges: the vendor's, twice
    assert (payment.stripe_account_id is not None) is (charge_type is ChargeType.direct)
    assert successes(route) == 1
    assert await session.scalar(select(func.count()).select_from(Payment)) == 1
    payment = await only_payment(session)
    assert payment.stripe_payment_intent_id == route.calls.last.response.json()["id"]
    assert await stock(session, listing_id) == STOCK - 1  # reserved once, not twice


async def test_checkout_nobody_retries_then_the_expiry_job_restores_the_stock(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    gateway: StripeGateway,
    stripe_api: respx.MockRouter,
) -> None:
    """The other path out of a failed create: no PaymentIntent was recorded (its client secret
    never left the server, so nothing can be paid), and the reservation ends."""
    listing_id = await _listing(session)
    route = mock_create_intent(stripe_api, side_effect=httpx.ReadTimeout)
    failed = await _checkout(client, buyer, listing_id, f"checkout-{uuid.uuid4()}")
    assert failed.status_code == 503
    payment = await only_payment(session)

    early = await expire_reservations(session, gateway, now=datetime.now(UTC))
    assert early == 0
    assert await stock(session, listing_id) == STOCK - 1

    later = payment.reservation_expires_at + timedelta(seconds=1)
    assert await expire_reservations(session, gateway, now=later) == 1

    payment = await only_payment(session)
    assert payment.status is PaymentStatus.expired
    assert await order_statuses(session, payment.id) == {OrderStatus.expired}
    assert await stock(session, listing_id) == STOCK
    assert route.call_count == 1  # no intent to cancel: no further Stripe call


# --- PaymentIntent cancel: buyer cancel, and the expiry job ------------------------------------


async def _placed(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> tuple[uuid.UUID, Payment, uuid.UUID]:
    listing_id = await _listing(session)
    mock_create_intent(stripe_api)
    placed = await _checkout(client, buyer, listing_id)
    assert placed.status_code == 201, placed.text
    payment = await only_payment(session)
    assert payment.stripe_payment_intent_id
    order_id = uuid.UUID(placed.json()["orders"][0]["id"])
    return listing_id, payment, order_id


@pytest.mark.parametrize("fault", FAULTS)
async def test_buyer_cancel_fault_keeps_the_order_and_the_retry_cancels_once(
    fault: Fault,
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    listing_id, payment, order_id = await _placed(client, session, buyer, stripe_api)
    route = stripe_api.post(
        f"{STRIPE_API_BASE}/v1/payment_intents/{payment.stripe_payment_intent_id}/cancel"
    ).mock(side_effect=flaky(fault, _cancel_handler))

    failed = await client.post(f"/v1/buyer/orders/{order_id}/cancel", headers=buyer.headers)

    assert_problem(failed, fault)
    payment = await only_payment(session)
    # Stripe may or may not have cancelled it: the stock stays reserved until we know.
    assert payment.status is PaymentStatus.requires_payment
    assert await order_statuses(session, payment.id) == {OrderStatus.pending_payment}
    assert await stock(session, listing_id) == STOCK - 1

    retried = await client.post(f"/v1/buyer/orders/{order_id}/cancel", headers=buyer.headers)

    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "cancelled"
    assert keys(route) == [f"payment:{payment.id}:cancel"] * 2
    assert successes(route) == 1
    payment = await only_payment(session)
    assert payment.status is PaymentStatus.canceled
    assert await stock(session, listing_id) == STOCK  # restored exactly once


@pytest.mark.parametrize("fault", FAULTS)
async def test_expiry_job_cancel_fault_leaves_the_payment_for_the_next_run(
    fault: Fault,
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    gateway: StripeGateway,
    stripe_api: respx.MockRouter,
) -> None:
    listing_id, payment, _ = await _placed(client, session, buyer, stripe_api)
    route = stripe_api.post(
        f"{STRIPE_API_BASE}/v1/payment_intents/{payment.stripe_payment_intent_id}/cancel"
    ).mock(side_effect=flaky(fault, _cancel_handler))
    after_expiry = payment.reservation_expires_at + timedelta(seconds=1)

    # The job reports it (0 expired, a warning logged) and keeps the payment for its next run.
    assert await expire_reservations(session, gateway, now=after_expiry) == 0
    payment = await only_payment(session)
    assert payment.status is PaymentStatus.requires_payment
    assert await stock(session, listing_id) == STOCK - 1

    assert await expire_reservations(session, gateway, now=after_expiry) == 1

    assert keys(route) == [f"payment:{payment.id}:cancel"] * 2
    assert successes(route) == 1
    payment = await only_payment(session)
    assert payment.status is PaymentStatus.expired
    assert await order_statuses(session, payment.id) == {OrderStatus.expired}
    assert await stock(session, listing_id) == STOCK
    # A third run finds nothing to do and calls Stripe no more.
    assert await expire_reservations(session, gateway, now=after_expiry) == 0
    assert route.call_count == 2


@pytest.mark.parametrize("fault", FAULTS)
async def test_cancel_racing_a_success_with_a_retrieve_fault_lets_the_success_win_on_retry(
    fault: Fault,
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    """Stripe refuses the cancel (the intent succeeded that moment), then the retrieve of its real
    state fails: nothing may be released on a guess. The retry learns the success."""
    listing_id, payment, order_id = await _placed(client, session, buyer, stripe_api)
    intent_id = str(payment.stripe_payment_intent_id)
    cancel = stripe_api.post(f"{STRIPE_API_BASE}/v1/payment_intents/{intent_id}/cancel").mock(
        side_effect=lambda _: stripe_error(400, code="payment_intent_unexpected_state")
    )
    succeeded = payment_intent(
        amount=2500,
        status="succeeded",
        intent_id=intent_id,
        metadata={"payment_id": str(payment.id)},
        latest_charge={"id": "ch_won", "object": "charge"},
    )
    retrieve = stripe_api.get(
        url__regex=rf"{STRIPE_API_BASE}/v1/payment_intents/{intent_id}(\?.*)?$"
    ).mock(side_effect=flaky(fault, lambda _: ok(succeeded)))
    url = f"/v1/buyer/orders/{order_id}/cancel"

    failed = await client.post(url, headers=buyer.headers)

    assert_problem(failed, fault)
    payment = await only_payment(session)
    assert payment.status is PaymentStatus.requires_payment
    assert await stock(session, listing_id) == STOCK - 1

    retried = await client.post(url, headers=buyer.headers)

    assert retried.status_code == 409, retried.text
    assert retried.json()["code"] == "order_not_cancellable"
    assert keys(cancel) == [f"payment:{payment.id}:cancel"] * 2
    assert retrieve.call_count == 2
    payment = await only_payment(session)
    assert (payment.status, payment.stripe_charge_id) == (PaymentStatus.succeeded, "ch_won")
    assert await order_statuses(session, payment.id) == {OrderStatus.paid}
    assert await stock(session, listing_id) == STOCK - 1  # sold, never restored


# --- Checkout Session create (hosted page) ----------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
async def test_checkout_session_fault_keeps_the_plan_and_the_retry_sends_the_same_request(
    fault: Fault,
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    listing_id, payment, order_id = await _placed(client, session, buyer, stripe_api)
    route = stripe_api.post(f"{STRIPE_API_BASE}/v1/checkout/sessions").mock(
        side_effect=flaky(fault, checkout_session_handler)
    )
    url = f"/v1/buyer/orders/{order_id}/checkout-session"

    failed = await client.post(url, headers=buyer.headers)

    assert_problem(failed, fault)
    payment = await only_payment(session)
    assert payment.status is PaymentStatus.requires_payment
    assert payment.checkout_session_id is None
    assert payment.checkout_session_seq == 1
    planned = payment.checkout_session_expires_at
    assert planned is not None
    # The reservation was extended to the session's planned expiry, so the page could be paid.
    assert payment.reservation_expires_at >= planned
    assert await stock(session, listing_id) == STOCK - 1

    retried = await client.post(url, headers=buyer.headers)

    assert retried.status_code == 200, retried.text
    assert keys(route) == [f"payment:{payment.id}:checkout_session:1"] * 2
    first, second = bodies(route)
    assert first == second  # same expires_at too: Stripe replays the same session
    assert first["expires_at"] == str(int(planned.timestamp()))
    assert successes(route) == 1
    payment = await only_payment(session)
    assert payment.checkout_session_id == retried.json()["session_id"]
    assert await stock(session, listing_id) == STOCK - 1


# --- Checkout Session expire (cancel with an open hosted page) --------------------------------


@pytest.mark.parametrize("fault", FAULTS)
async def test_cancel_with_an_open_checkout_session_fault_keeps_it_open_for_the_retry(
    fault: Fault,
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    """The hosted page is closed at Stripe before the PaymentIntent is cancelled: a fault there
    must leave everything as it was (the page may still be paid), and the retry close it with the
    same key."""
    listing_id, payment, order_id = await _placed(client, session, buyer, stripe_api)
    stripe_api.post(f"{STRIPE_API_BASE}/v1/checkout/sessions").mock(
        side_effect=checkout_session_handler
    )
    opened = await client.post(
        f"/v1/buyer/orders/{order_id}/checkout-session", headers=buyer.headers
    )
    assert opened.status_code == 200, opened.text
    session_id = opened.json()["session_id"]
    expire = stripe_api.post(f"{STRIPE_API_BASE}/v1/checkout/sessions/{session_id}/expire").mock(
        side_effect=flaky(
            fault,
            lambda _: ok({"id": session_id, "object": "checkout.session", "status": "expired"}),
        )
    )
    cancel = stripe_api.post(
        f"{STRIPE_API_BASE}/v1/payment_intents/{payment.stripe_payment_intent_id}/cancel"
    ).mock(side_effect=_cancel_handler)

    failed = await client.post(f"/v1/buyer/orders/{order_id}/cancel", headers=buyer.headers)

    assert_problem(failed, fault)
    assert cancel.call_count == 0  # the intent is not touched while the page may be open
    payment = await only_payment(session)
    assert payment.status is PaymentStatus.requires_payment
    assert await stock(session, listing_id) == STOCK - 1

    retried = await client.post(f"/v1/buyer/orders/{order_id}/cancel", headers=buyer.headers)

    assert retried.status_code == 200, retried.text
    assert keys(expire) == [f"payment:{payment.id}:checkout_session:1:expire"] * 2
    assert successes(expire) == 1
    assert keys(cancel) == [f"payment:{payment.id}:cancel"]
    assert (await only_payment(session)).status is PaymentStatus.canceled
    assert await stock(session, listing_id) == STOCK


# --- PaymentIntent retrieve (reconcile) --------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
async def test_reconcile_reports_an_intent_fault_and_the_next_run_applies_it(
    fault: Fault,
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    listing_id, payment, _ = await _placed(client, session, buyer, stripe_api)
    intent_id = str(payment.stripe_payment_intent_id)
    succeeded = payment_intent(
        amount=payment.amount,
        status="succeeded",
        intent_id=intent_id,
        metadata={"payment_id": str(payment.id)},
        latest_charge={"id": "ch_reconciled", "object": "charge"},
    )
    route = stripe_api.get(f"{STRIPE_API_BASE}/v1/payment_intents/{intent_id}").mock(
        side_effect=flaky(fault, lambda _: ok(succeeded))
    )
    later = datetime.now(UTC) + timedelta(minutes=30)  # the webhook is overdue
    mock_nothing_listed(stripe_api)  # reconcile also reads disputes and payouts...
    mock_active_accounts(stripe_api)  # ...and the vendor's account

    first = await reconcile(sessions, gateway, now=later)

    assert first.payments.checked == 1
    assert first.payments.changed == []
    assert len(first.errors) == 1
    assert first.errors[0].startswith(f"payment {payment.id}: {fault.code}")
    assert (await only_payment(session)).status is PaymentStatus.requires_payment

    second = await reconcile(sessions, gateway, now=later)

    assert second.errors == []
    assert second.payments.changed == [f"{payment.id}: requires_payment -> succeeded"]
    assert route.call_count == 2
    payment = await only_payment(session)
    assert payment.status is PaymentStatus.succeeded
    assert payment.stripe_charge_id == "ch_reconciled"
    assert await order_statuses(session, payment.id) == {OrderStatus.paid}
    assert await stock(session, listing_id) == STOCK - 1  # sold, never restored
