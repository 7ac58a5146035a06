"""POST /v1/buyer/orders: the statements a fresh checkout sends (each round trip costs the worker
CPU), that its answer built from memory is the one a read from the database gives, and the rare
paths of recording the PaymentIntent (the payment moved on, or a concurrent call recorded it)."""

from __future__ import annotations

import uuid

import httpx
import pytest
import respx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from marketplace_api.checkout import orders as service
from marketplace_api.payments.models import Payment, PaymentStatus
from tests.conftest import AuthUser, MakeUser
from tests.fixtures.catalog import make_listing, make_vendor
from tests.fixtures.statement_ceiling import assert_no_open_transaction, assert_within
from tests.fixtures.statements import Statements
from tests.fixtures.stripe import form
from tests.fixtures.stripe_mocks import (
    create_intent_handler,
    mock_create_intent,
)

SHIPPING = {
    "name": "Jenny Rosen",
    "address": {
        "line1": "1 Main St",
        "line2": "Apt 2",
        "city": "Springfield",
        "postal_code": "12345",
        "state": "IL",
        "country": "US",
    },
    "phone": "+15555550100",
}
CONTACT = {"email": "jenny@example.com", "phone": "+15555550100"}


@pytest.mark.parametrize("vendors", [1, 2], ids=["one-listing", "two-vendors"])
async def test_fresh_checkout_is_one_transaction_then_one_update(
    vendors: int,
    committed_engine: AsyncEngine,
    committed_client: httpx.AsyncClient,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    """At most 11 statements for one listing, plus one stock UPDATE per further listing (it was
    20: a read of the orders before Stripe, UPDATE + COMMIT + refresh after it, then the answer
    re-read; now the answer comes from memory)."""
    async with AsyncSession(committed_engine, expire_on_commit=False) as s:
        listing_ids = []
        for n in range(vendors):
            vendor = await make_vendor(s, display_name=f"Vendor {n}")
            listing_ids.append((await make_listing(s, vendor, price=2000, stock=10)).id)
    buyer = await make_committed_user("buyer")
    body = {
        "items": [{"listing_id": str(i), "quantity": 1} for i in listing_ids],
        "shipping": SHIPPING,
        "contact": CONTACT,
    }
    statements = Statements(committed_engine)
    at_stripe: list[list[str]] = []

    def stripe(request: httpx.Request) -> httpx.Response:
        at_stripe.append(list(statements.seen))
        return create_intent_handler(request)

    mock_create_intent(stripe_api, side_effect=stripe)
    warm_up = await committed_client.post("/v1/buyer/orders", json=body, headers=buyer.headers)
    assert warm_up.status_code == 201, warm_up.text
    at_stripe.clear()

    with statements:
        response = await committed_client.post("/v1/buyer/orders", json=body, headers=buyer.headers)

    assert response.status_code == 201, response.text
    placed = [
        "BEGIN",
        "SELECT users",  # the auth dependency: a deactivated buyer is refused
        "SELECT listings",
        "INSERT payments",
        "INSERT orders",
        "INSERT order_items",
        *["UPDATE listings"] * vendors,  # the reservation, last before COMMIT
        "COMMIT",
    ]
    recorded = ["BEGIN", "UPDATE payments", "COMMIT"]
    # A ceiling: fewer statements (or another order) is fine, one more fails.
    assert_within(statements.seen, placed + recorded)
    # Stripe is called once, with no transaction open, after the orders were placed.
    assert len(at_stripe) == 1
    assert_no_open_transaction(at_stripe[0])
    for written in ("INSERT payments", "INSERT orders", "INSERT order_items", "UPDATE listings"):
        assert written in at_stripe[0]
    assert "UPDATE payments" in statements.seen[len(at_stripe[0]) :]
    # The server defaults the answer needs came back with the INSERT (eager_defaults), and the
    # payment's current row with the UPDATE.
    insert = next(s for s in statements.sql if s.startswith("INSERT INTO orders "))
    for column in ("created_at", "fulfilment_status", "amount_refunded"):
        assert f"orders.{column}" in insert.split(" RETURNING ")[1]
    update_ = next(s for s in statements.sql if s.startswith("UPDATE payments "))
    for column in ("status", "client_secret", "reservation_expires_at"):
        assert f"payments.{column}" in update_.split(" RETURNING ")[1]


async def test_fresh_answer_is_the_answer_read_from_the_database(
    client: httpx.AsyncClient,
    session: AsyncSession,
    connection: AsyncConnection,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = await make_vendor(session, display_name="First")
    second = await make_vendor(session, display_name="Second", fee_bps=333)
    listings = [
        await make_listing(session, first, price=1000, title="A"),
        await make_listing(session, first, price=1500, title="B"),
        await make_listing(session, second, price=2001, title="C"),
        await make_listing(session, second, price=999, title="D"),
    ]
    mock_create_intent(stripe_api)
    # Ids made in descending order: the orders are written in the reverse of their id order.
    descending = iter(range(2**122, 0, -1))
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(descending)))

    response = await client.post(
        "/v1/buyer/orders",
        json={
            "items": [
                {"listing_id": str(li.id), "quantity": q}
                for li, q in zip(reversed(listings), (1, 2, 3, 4), strict=True)
            ],
            "shipping": SHIPPING,
            "contact": CONTACT,
        },
        headers=buyer.headers,
    )

    monkeypatch.undo()
    assert response.status_code == 201, response.text
    payment_id = uuid.UUID(response.json()["payment_id"])
    # A new session: nothing from the request's identity map, every value read from its row.
    async with AsyncSession(bind=connection, join_transaction_mode="create_savepoint") as fresh:
        payment = (
            await fresh.execute(select(Payment).where(Payment.id == payment_id))
        ).scalar_one()
        from_database = await service.checkout_read(fresh, payment)
    # Compared parsed: a JSONB column gives its keys back in an order of its own.
    assert response.json() == from_database.model_dump(mode="json")
    assert len(response.json()["orders"]) == 2
    assert [len(o["items"]) for o in response.json()["orders"]] == [2, 2]
    assert response.json()["orders"][0]["shipping"] == SHIPPING
    assert response.json()["orders"][0]["contact"] == CONTACT


async def test_payment_expired_while_stripe_answered_hands_out_no_client_secret(
    committed_engine: AsyncEngine,
    committed_client: httpx.AsyncClient,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    async with AsyncSession(committed_engine, expire_on_commit=False) as s:
        vendor = await make_vendor(s)
        listing = await make_listing(s, vendor)
    buyer = await make_committed_user("buyer")

    async def expire_meanwhile(request: httpx.Request) -> httpx.Response:
        payment_id = uuid.UUID(form(request)["metadata[payment_id]"])
        async with AsyncSession(committed_engine) as other:  # blocks if a row lock were held
            await other.execute(
                update(Payment).where(Payment.id == payment_id).values(status=PaymentStatus.expired)
            )
            await other.commit()
        return create_intent_handler(request)

    mock_create_intent(stripe_api, side_effect=expire_meanwhile)

    response = await committed_client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=buyer.headers,
    )

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "payment_not_payable"
    assert "secret" not in response.text


async def test_intent_recorded_by_a_concurrent_call_is_read_back(
    committed_engine: AsyncEngine,
    committed_client: httpx.AsyncClient,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    """The conditional UPDATE matches no row: the answer is the row as recorded by the other."""
    async with AsyncSession(committed_engine, expire_on_commit=False) as s:
        vendor = await make_vendor(s)
        listing = await make_listing(s, vendor)
    buyer = await make_committed_user("buyer")
    recorded: dict[str, str] = {}

    async def recorded_meanwhile(request: httpx.Request) -> httpx.Response:
        answer = create_intent_handler(request)
        intent_id = answer.json()["id"]
        recorded["client_secret"] = f"{intent_id}_secret_recorded"
        async with AsyncSession(committed_engine) as other:
            await other.execute(
                update(Payment)
                .where(Payment.id == uuid.UUID(form(request)["metadata[payment_id]"]))
                .values(stripe_payment_intent_id=intent_id, client_secret=recorded["client_secret"])
            )
            await other.commit()
        return answer

    mock_create_intent(stripe_api, side_effect=recorded_meanwhile)
    statements = Statements(committed_engine)

    with statements:
        response = await committed_client.post(
            "/v1/buyer/orders",
            json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
            headers=buyer.headers,
        )

    assert response.status_code == 201, response.text
    assert response.json()["client_secret"] == recorded["client_secret"]
    assert response.json()["status"] == "requires_payment"
    # The last transaction (the one before is the other call's, on the same engine).
    recorded = statements.seen[len(statements.seen) - 1 - statements.seen[::-1].index("BEGIN") :]
    assert_within(recorded, ["BEGIN", "UPDATE payments", "SELECT payments", "COMMIT"])
    assert "SELECT payments" in recorded  # the other call's row, read back
