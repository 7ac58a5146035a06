"""A webhook delivery's statements: a new event is stored and applied in ONE transaction; a
duplicate only looks. Each round trip costs the API worker CPU, so the bounds are tested."""

from __future__ import annotations

import time
import uuid

import httpx
import respx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace_api.db import create_sessionmaker
from marketplace_api.ledger.models import MoneyMovement
from marketplace_api.notifications.models import Notification
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.state import transition_payment
from tests.conftest import MakeUser
from tests.fixtures.catalog import make_listing, make_vendor, payment_intent
from tests.fixtures.statement_ceiling import assert_one_transaction, assert_within
from tests.fixtures.statements import Statements
from tests.fixtures.stripe import event, stripe_id
from tests.fixtures.stripe_mocks import mock_create_intent
from tests.webhooks.conftest import deliver


async def _unpaid_payment(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    make_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> Payment:
    async with create_sessionmaker(engine)() as session:
        listing = await make_listing(session, await make_vendor(session), price=2000, stock=5)
        await session.commit()
    buyer = await make_user("buyer")
    mock_create_intent(stripe_api)
    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=buyer.headers,
    )
    assert response.status_code == 201, response.text
    async with create_sessionmaker(engine)() as session:
        payment = await session.get(Payment, uuid.UUID(response.json()["payment_id"]))
    assert payment is not None
    assert payment.stripe_payment_intent_id is not None
    return payment


async def test_payment_succeeded_is_stored_and_applied_in_one_transaction(
    committed_client: httpx.AsyncClient,
    committed_engine: AsyncEngine,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    payment = await _unpaid_payment(
        committed_client, committed_engine, make_committed_user, stripe_api
    )
    succeeded = event(
        "payment_intent.succeeded",
        payment_intent(
            amount=2000,
            status="succeeded",
            metadata={"payment_id": str(payment.id)},
            intent_id=payment.stripe_payment_intent_id,
            latest_charge=stripe_id("ch"),
        ),
        created=int(time.time()),
    )

    with Statements(committed_engine) as first:
        response = await deliver(committed_client, succeeded)
    assert response.json()["status"] == "processed"
    # One transaction, and a ceiling: fewer statements (or another order) is fine, one more fails.
    assert_one_transaction(first.seen)
    assert first.seen.index("INSERT stripe_events") < first.seen.index("UPDATE payments")
    assert_within(
        first.seen,
        [
            "BEGIN",
            "INSERT stripe_events",  # in the same transaction as its effects
            "SELECT payments",  # locked
            "UPDATE payments",  # RETURNING the row: no refresh
            "UPDATE orders",
            "SELECT orders",  # read once for the ledger
            "INSERT money_movements",  # charge, fee, settled share: one statement
            "SELECT unnest(",  # ONE job writes and sends the e-mails, outside this transaction
            "UPDATE stripe_events",  # processed: fails if the handler left the transaction aborted
            "COMMIT",
        ],
    )

    with Statements(committed_engine) as again:
        response = await deliver(committed_client, succeeded)
    assert response.json() == {
        "received": True,
        "id": succeeded["id"],
        "status": "processed",
        "duplicate": True,
    }
    assert len(again.seen) <= 7
    assert "UPDATE payments" not in again.seen

    async with create_sessionmaker(committed_engine)() as session:
        paid = await session.get(Payment, payment.id)
        assert paid is not None
        assert paid.status is PaymentStatus.succeeded
        orders = (await session.execute(select(Order.status))).scalars().all()
        assert orders == [OrderStatus.paid]
        kinds = (await session.execute(select(MoneyMovement.kind))).scalars().all()
        assert sorted(k.value for k in kinds) == ["charge", "platform_fee", "transfer"]
        # The e-mails are the deferred job's to write (tests/notifications/test_paid_job.py).
        assert (await session.execute(select(Notification.id))).scalars().all() == []
        jobs = (await session.execute(text("SELECT task_name, args FROM procrastinate_jobs"))).all()
        assert [tuple(job) for job in jobs] == [
            ("notify_payment_succeeded", {"payment_id": str(payment.id)})
        ]


async def test_transition_refreshes_the_payment_from_the_updated_row(
    committed_client: httpx.AsyncClient,
    committed_engine: AsyncEngine,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    payment = await _unpaid_payment(
        committed_client, committed_engine, make_committed_user, stripe_api
    )
    async with create_sessionmaker(committed_engine)() as session:
        loaded = await session.get(Payment, payment.id)
        assert loaded is not None
        before = loaded.updated_at
        now = loaded.created_at
        with Statements(committed_engine) as statements:
            moved = await transition_payment(
                session, loaded, PaymentStatus.processing, now=now, values={"failure_code": "x"}
            )
        assert moved
        assert statements.seen == ["UPDATE payments"]  # one statement, no refresh SELECT
        # The object holds the row as updated, database defaults included, without a refresh.
        assert (loaded.status, loaded.status_updated_at, loaded.failure_code) == (
            PaymentStatus.processing,
            now,
            "x",
        )
        assert loaded.updated_at > before
        # Money in flight cannot expire: nothing moves, the object keeps the row's values.
        assert not await transition_payment(session, loaded, PaymentStatus.expired, now=now)
        assert loaded.status is PaymentStatus.processing
        await session.rollback()
