"""The real handlers through the signed endpoint: out-of-order and early events end correct."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.db import create_sessionmaker
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.vendors.models import Vendor, VendorStatus
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.webhooks.pipeline import process_due_events
from tests.conftest import AuthUser, MakeUser
from tests.fixtures import accounts as vendor_factories
from tests.fixtures.catalog import make_listing, make_vendor, payment_intent
from tests.fixtures.stripe import WEBHOOK_SECRET_CONNECT, event, stripe_id
from tests.fixtures.stripe_mocks import mock_create_intent
from tests.webhooks.conftest import deliver


async def _checkout(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> tuple[uuid.UUID, str]:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, price=2000, stock=3)
    mock_create_intent(stripe_api)
    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=buyer.headers,
    )
    assert response.status_code == 201, response.text
    payment = await session.get(Payment, uuid.UUID(response.json()["payment_id"]))
    assert payment is not None
    assert payment.stripe_payment_intent_id is not None
    return payment.id, payment.stripe_payment_intent_id


async def _payment(session: AsyncSession, payment_id: uuid.UUID) -> Payment:
    payment = await session.get(Payment, payment_id, populate_existing=True)
    assert payment is not None
    return payment


async def test_succeeded_before_processing_ends_succeeded(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    payment_id, intent_id = await _checkout(client, session, buyer, stripe_api)
    t = int(time.time())
    metadata = {"payment_id": str(payment_id)}
    charge = stripe_id("ch")
    succeeded = event(
        "payment_intent.succeeded",
        payment_intent(
            amount=2000,
            status="succeeded",
            metadata=metadata,
            intent_id=intent_id,
            latest_charge=charge,
        ),
        created=t,
    )
    processing = event(
        "payment_intent.processing",
        payment_intent(amount=2000, status="processing", metadata=metadata, intent_id=intent_id),
        created=t - 5,
    )
    assert (await deliver(client, succeeded)).json()["status"] == "processed"
    assert (await deliver(client, processing)).json()["status"] == "processed"
    for _ in range(3):  # Stripe's redeliveries change nothing either
        assert (await deliver(client, succeeded)).json()["duplicate"] is True

    payment = await _payment(session, payment_id)
    assert payment.status is PaymentStatus.succeeded
    assert payment.stripe_charge_id == charge
    orders = (
        await session.execute(
            select(Order.status)
            .where(Order.payment_id == payment_id)
            .execution_options(populate_existing=True)
        )
    ).scalars()
    assert list(orders) == [OrderStatus.paid]


async def test_event_before_the_payment_is_committed_is_applied_later(
    committed_client: httpx.AsyncClient,
    committed_engine: AsyncEngine,
    make_committed_user: MakeUser,
) -> None:
    buyer = await make_committed_user("buyer")
    expires = datetime.now(UTC) + timedelta(minutes=15)
    intent_id = stripe_id("pi")
    async with AsyncSession(committed_engine, expire_on_commit=False) as writer:
        vendor = await make_vendor(writer)
        payment = Payment(
            buyer_id=buyer.id,
            charge_type="destination",
            currency="usd",
            amount=2000,
            platform_fee=200,
            reservation_expires_at=expires,
            stripe_payment_intent_id=intent_id,
        )
        writer.add(payment)
        await writer.flush()
        writer.add(
            Order(
                payment_id=payment.id,
                buyer_id=buyer.id,
                vendor_id=vendor.id,
                vendor_stripe_account_id=str(vendor.stripe_account_id),
                currency="usd",
                amount=2000,
                platform_fee=200,
                vendor_amount=1800,
                fee_bps=1000,
                reservation_expires_at=expires,
            )
        )
        await writer.flush()  # written, NOT committed: the event outruns our commit

        evt = event(
            "payment_intent.succeeded",
            payment_intent(
                amount=2000,
                status="succeeded",
                intent_id=intent_id,
                metadata={"payment_id": str(payment.id)},
                latest_charge=stripe_id("ch"),
            ),
        )
        response = await deliver(committed_client, evt)
        assert response.status_code == 200
        assert response.json()["status"] == "pending"
        await writer.commit()

    async with AsyncSession(committed_engine) as reader:
        row = await reader.get(StripeEvent, evt["id"])
        assert row is not None
        assert row.status is EventStatus.pending
        assert row.last_error is not None
        assert row.last_error.startswith("retry later:")
        due = row.next_attempt_at
    assert due is not None

    assert await process_due_events(create_sessionmaker(committed_engine), now=due) == 1
    async with AsyncSession(committed_engine) as reader:
        stored = await reader.get(Payment, payment.id)
        assert stored is not None
        assert stored.status is PaymentStatus.succeeded
        row = await reader.get(StripeEvent, evt["id"])
        assert row is not None
        assert row.status is EventStatus.processed


async def test_older_account_update_after_a_newer_one_does_not_move_the_vendor_back(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    account_id = stripe_id("acct")
    vendor = await vendor_factories.make_vendor(session, stripe_account_id=account_id)
    t = int(time.time())
    newer = event(
        "account.updated",
        vendor_factories.active_account(account_id, vendor_id=vendor.id),
        account=account_id,
        created=t,
    )
    older = event(
        "account.updated",
        vendor_factories.account(account_id, vendor_id=vendor.id),
        account=account_id,
        created=t - 60,
    )
    for evt in (newer, older):
        response = await deliver(client, evt, secret=WEBHOOK_SECRET_CONNECT)
        assert response.json()["status"] == "processed"
    stored = await session.get(Vendor, vendor.id, populate_existing=True)
    assert stored is not None
    assert stored.status is VendorStatus.active
    assert stored.charges_enabled is True
    row = await session.get(StripeEvent, older["id"], populate_existing=True)
    assert row is not None
    assert row.account == account_id
