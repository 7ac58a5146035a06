"""Lost webhooks: with no event delivered, `reconcile` brings payments and vendors to Stripe's
state (retrieved with Stripe-Account for direct charges) and retries due events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.config import ChargeType
from marketplace_api.deps import AppState
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.reconcile.service import reconcile
from marketplace_api.vendors.models import Vendor, VendorStatus
from marketplace_api.webhooks.envelope import parse_event
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.webhooks.pipeline import store_event
from tests.conftest import AuthUser
from tests.fixtures import accounts as vendor_factories
from tests.fixtures.catalog import make_listing, make_vendor, payment_intent
from tests.fixtures.stripe import event, ok, stripe_error, stripe_id
from tests.fixtures.stripe_mocks import mock_create_intent
from tests.webhooks.reconcile_mocks import mock_active_accounts, mock_nothing_listed


@pytest.fixture(autouse=True)
def _nothing_listed(stripe_api: respx.MockRouter) -> None:
    mock_nothing_listed(stripe_api)


async def _order(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    charge_type: ChargeType = ChargeType.destination,
) -> Payment:
    vendor = await make_vendor(session, charge_type=charge_type)
    listing = await make_listing(session, vendor, price=2500)
    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=buyer.headers,
    )
    assert response.status_code == 201, response.text
    payment = await session.get(Payment, uuid.UUID(response.json()["payment_id"]))
    assert payment is not None
    return payment


def _gateway(app_state: AppState) -> StripeGateway:
    assert app_state.stripe is not None
    return app_state.stripe


async def _status(session: AsyncSession, payment_id: uuid.UUID) -> PaymentStatus:
    payment = await session.get(Payment, payment_id, populate_existing=True)
    assert payment is not None
    return payment.status


async def test_reconcile_brings_stuck_payments_and_vendors_to_stripes_state(
    client: httpx.AsyncClient,
    session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
    app_state: AppState,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    mock_create_intent(stripe_api)
    destination = await _order(client, session, buyer)
    direct = await _order(client, session, buyer, ChargeType.direct)
    processing = await _order(client, session, buyer)
    fresh = await _order(client, session, buyer)  # too recent: left to the webhooks
    now = datetime.now(UTC)
    await session.execute(
        update(Payment)
        .where(Payment.id.in_([destination.id, direct.id, processing.id]))
        .values(status_updated_at=now - timedelta(minutes=30))
    )
    account_id = stripe_id("acct")
    vendor = await vendor_factories.make_vendor(session, stripe_account_id=account_id)
    assert vendor.status is VendorStatus.onboarding
    await session.commit()

    def intent_route(payment: Payment, status: str, **extra: object) -> respx.Route:
        return stripe_api.get(f"/v1/payment_intents/{payment.stripe_payment_intent_id}").mock(
            return_value=ok(
                payment_intent(
                    amount=payment.amount,
                    status=status,
                    intent_id=payment.stripe_payment_intent_id,
                    metadata={"payment_id": str(payment.id)},
                    **extra,
                )
            )
        )

    charge = stripe_id("ch")
    destination_route = intent_route(
        destination, "succeeded", latest_charge={"id": charge, "object": "charge"}
    )
    direct_route = intent_route(direct, "succeeded", latest_charge=stripe_id("ch"))
    intent_route(processing, "processing")
    fresh_route = stripe_api.get(f"/v1/payment_intents/{fresh.stripe_payment_intent_id}")
    account_route = stripe_api.get(f"/v1/accounts/{account_id}").mock(
        return_value=ok(vendor_factories.active_account(account_id, vendor_id=vendor.id))
    )
    mock_active_accounts(stripe_api)  # the order vendors: visited too, nothing changes

    report = await reconcile(test_sessionmaker, _gateway(app_state), now=now)

    assert await _status(session, destination.id) is PaymentStatus.succeeded
    assert await _status(session, direct.id) is PaymentStatus.succeeded
    assert await _status(session, processing.id) is PaymentStatus.processing
    assert await _status(session, fresh.id) is PaymentStatus.requires_payment
    assert not fresh_route.called
    stored = await session.get(Payment, destination.id, populate_existing=True)
    assert stored is not None
    assert stored.stripe_charge_id == charge
    # Direct charges live on the connected account: retrieved with its Stripe-Account.
    assert direct_route.calls.last.request.headers["Stripe-Account"] == direct.stripe_account_id
    assert "Stripe-Account" not in destination_route.calls.last.request.headers
    assert "Stripe-Account" not in account_route.calls.last.request.headers
    refreshed = await session.get(Vendor, vendor.id, populate_existing=True)
    assert refreshed is not None
    assert refreshed.status is VendorStatus.active

    assert report.payments.checked == 3
    assert sorted(report.payments.changed) == sorted(
        [
            f"{destination.id}: requires_payment -> succeeded",
            f"{direct.id}: requires_payment -> succeeded",
            f"{processing.id}: requires_payment -> processing",
        ]
    )
    assert report.vendors.checked == 5  # every vendor, active ones included
    assert report.vendors.changed == [f"{vendor.id}: onboarding -> active"]
    assert report.errors == []
    assert "payments: 3 checked, 3 changed" in report.render()


async def test_reconcile_reports_stripe_errors_and_carries_on(
    client: httpx.AsyncClient,
    session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
    app_state: AppState,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    mock_create_intent(stripe_api)
    broken = await _order(client, session, buyer)
    fine = await _order(client, session, buyer)
    now = datetime.now(UTC)
    await session.execute(
        update(Payment)
        .where(Payment.id.in_([broken.id, fine.id]))
        .values(status_updated_at=now - timedelta(hours=1))
    )
    await session.commit()
    stripe_api.get(f"/v1/payment_intents/{broken.stripe_payment_intent_id}").mock(
        return_value=stripe_error(500, type_="api_error")
    )
    stripe_api.get(f"/v1/payment_intents/{fine.stripe_payment_intent_id}").mock(
        return_value=ok(
            payment_intent(
                amount=fine.amount,
                status="canceled",
                intent_id=fine.stripe_payment_intent_id,
                metadata={"payment_id": str(fine.id)},
            )
        )
    )

    mock_active_accounts(stripe_api)

    report = await reconcile(test_sessionmaker, _gateway(app_state), now=now)

    assert await _status(session, broken.id) is PaymentStatus.requires_payment
    assert await _status(session, fine.id) is PaymentStatus.canceled
    [error] = report.errors
    assert error.startswith(f"payment {broken.id}: stripe_unavailable:")
    assert report.payments.changed == [f"{fine.id}: requires_payment -> canceled"]


async def test_reconcile_retries_due_events_and_optionally_failed_ones(
    session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
    app_state: AppState,
) -> None:
    due = event("customer.created", {"id": stripe_id("cus")})
    failed = event("customer.updated", {"id": stripe_id("cus")})
    for evt in (due, failed):
        await store_event(session, parse_event(evt))
    await session.execute(
        update(StripeEvent)
        .where(StripeEvent.id == failed["id"])
        .values(status=EventStatus.failed, attempts=10)
    )
    await session.commit()
    now = datetime.now(UTC)

    first = await reconcile(test_sessionmaker, _gateway(app_state), now=now)
    assert (first.events_attempted, first.failed_events_rearmed) == (1, 0)
    row = await session.get(StripeEvent, failed["id"], populate_existing=True)
    assert row is not None
    assert row.status is EventStatus.failed

    second = await reconcile(test_sessionmaker, _gateway(app_state), now=now, retry_failed=True)
    assert (second.events_attempted, second.failed_events_rearmed) == (1, 1)
    for evt in (due, failed):
        row = await session.get(StripeEvent, evt["id"], populate_existing=True)
        assert row is not None
        assert row.status is EventStatus.ignored
