"""POST /v1/buyer/orders: the exact Stripe request per charge type, validation and failures."""

from __future__ import annotations

import uuid

import httpx
import respx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.catalog.models import Listing, ListingStatus
from marketplace_api.config import ChargeType
from marketplace_api.orders.models import Order, OrderItem, OrderStatus
from marketplace_api.payments.models import Payment, PaymentStatus
from tests.conftest import AuthUser
from tests.fixtures.catalog import make_listing, make_vendor
from tests.fixtures.stripe import form, stripe_error
from tests.fixtures.stripe_mocks import mock_create_intent


async def _stock(session: AsyncSession, listing: Listing | uuid.UUID) -> int:
    listing_id = listing if isinstance(listing, uuid.UUID) else listing.id
    value = await session.scalar(
        select(Listing.stock_quantity)
        .where(Listing.id == listing_id)
        .execution_options(populate_existing=True)
    )
    assert value is not None
    return value


async def test_destination_charge_sends_transfer_data_and_fee(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    vendor = await make_vendor(session, display_name="Acme Goods", fee_bps=1250)
    listing = await make_listing(session, vendor, price=1999, stock=5)
    route = mock_create_intent(stripe_api)

    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 3}]},
        headers=buyer.headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    payment_id = body["payment_id"]
    order_id = body["orders"][0]["id"]
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.headers["Idempotency-Key"] == f"payment:{payment_id}:create"
    assert "Stripe-Account" not in request.headers
    # 5997 * 12.5 % = 749.625 -> 750 (half up)
    assert form(request) == {
        "amount": "5997",
        "currency": "usd",
        "automatic_payment_methods[enabled]": "true",
        "application_fee_amount": "750",
        "transfer_data[destination]": vendor.stripe_account_id,
        "receipt_email": buyer.user.email,
        "statement_descriptor_suffix": "Acme Goods",
        "metadata[payment_id]": payment_id,
        "metadata[buyer_id]": str(buyer.id),
        "metadata[order_ids]": order_id,
    }
    assert body["amount"] == 5997
    assert body["platform_fee"] == 750
    assert body["charge_type"] == "destination"
    assert body["stripe_account"] is None
    assert body["client_secret"].startswith("pi_")
    assert body["status"] == "requires_payment"
    assert body["orders"][0]["vendor_amount"] == 5247
    assert body["orders"][0]["items"][0]["quantity"] == 3
    assert await _stock(session, listing) == 2
    payment = await session.get(Payment, uuid.UUID(payment_id))
    assert payment is not None
    assert payment.stripe_payment_intent_id == route.calls.last.response.json()["id"]


async def test_direct_charge_is_created_on_the_connected_account(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    vendor = await make_vendor(session, display_name="Café <Best>", charge_type=ChargeType.direct)
    listing = await make_listing(session, vendor, price=5000, currency="eur")
    route = mock_create_intent(stripe_api)

    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=buyer.headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    request = route.calls.last.request
    assert request.headers["Stripe-Account"] == vendor.stripe_account_id
    assert request.headers["Idempotency-Key"] == f"payment:{body['payment_id']}:create"
    sent = form(request)
    assert sent["amount"] == "5000"
    assert sent["currency"] == "eur"
    assert sent["application_fee_amount"] == "500"  # platform default 1000 bps
    assert "transfer_data[destination]" not in sent
    assert "transfer_group" not in sent
    assert "statement_descriptor_suffix" not in sent  # "<" is not allowed by Stripe
    assert sent["metadata[payment_id]"] == body["payment_id"]
    assert body["charge_type"] == "direct"
    assert body["stripe_account"] == vendor.stripe_account_id


async def test_multi_vendor_cart_is_one_separate_charge_with_a_transfer_group(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    first = await make_vendor(session, display_name="First", charge_type=ChargeType.direct)
    second = await make_vendor(session, display_name="Second", fee_bps=333)
    a = await make_listing(session, first, price=1000, currency="jpy")
    b = await make_listing(session, second, price=2001, currency="jpy")
    route = mock_create_intent(stripe_api)

    response = await client.post(
        "/v1/buyer/orders",
        json={
            "items": [
                {"listing_id": str(a.id), "quantity": 1},
                {"listing_id": str(b.id), "quantity": 1},
                {"listing_id": str(a.id), "quantity": 2},  # merged with the first line
            ]
        },
        headers=buyer.headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    payment_id = body["payment_id"]
    request = route.calls.last.request
    assert "Stripe-Account" not in request.headers
    sent = form(request)
    assert sent["amount"] == "5001"
    assert sent["currency"] == "jpy"
    assert sent["transfer_group"] == f"payment_{payment_id}"
    assert "application_fee_amount" not in sent
    assert "transfer_data[destination]" not in sent
    assert "statement_descriptor_suffix" not in sent
    order_ids = sorted(o["id"] for o in body["orders"])
    assert sent["metadata[order_ids]"] == ",".join(order_ids)
    assert body["charge_type"] == "separate"
    by_vendor = {o["vendor_id"]: o for o in body["orders"]}
    assert by_vendor[str(first.id)]["amount"] == 3000
    assert by_vendor[str(first.id)]["platform_fee"] == 300
    assert by_vendor[str(first.id)]["vendor_amount"] == 2700
    assert by_vendor[str(second.id)]["platform_fee"] == 67  # 2001 * 3.33 % = 66.63 -> 67
    assert by_vendor[str(second.id)]["vendor_amount"] == 1934
    assert body["platform_fee"] == 367
    assert by_vendor[str(first.id)]["items"][0]["quantity"] == 3


async def test_last_unit_taken_answers_out_of_stock_naming_the_listing(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    vendor = await make_vendor(session)
    plenty = await make_listing(session, vendor, stock=10)
    scarce = await make_listing(session, vendor, stock=1)
    plenty_id, scarce_id = plenty.id, scarce.id
    route = mock_create_intent(stripe_api)

    response = await client.post(
        "/v1/buyer/orders",
        json={
            "items": [
                {"listing_id": str(plenty.id), "quantity": 2},
                {"listing_id": str(scarce.id), "quantity": 2},
            ]
        },
        headers=buyer.headers,
    )

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "out_of_stock"
    assert response.json()["listing_id"] == str(scarce_id)
    assert route.call_count == 0
    assert await _stock(session, plenty_id) == 10  # all or nothing
    assert await session.scalar(select(func.count()).select_from(Payment)) == 0


async def test_vendor_that_cannot_take_payments_answers_409(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser
) -> None:
    vendor = await make_vendor(session, active=False)
    listing = await make_listing(session, vendor)
    listing_id = listing.id
    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=buyer.headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "vendor_cannot_accept_payments"
    assert response.json()["items"] == [{"listing_id": str(listing_id)}]


async def test_cart_in_two_currencies_names_the_items(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser
) -> None:
    vendor = await make_vendor(session)
    usd = await make_listing(session, vendor, currency="usd")
    eur = await make_listing(session, vendor, currency="eur")
    usd_id, eur_id = usd.id, eur.id
    response = await client.post(
        "/v1/buyer/orders",
        json={
            "items": [
                {"listing_id": str(usd.id), "quantity": 1},
                {"listing_id": str(eur.id), "quantity": 1},
            ]
        },
        headers=buyer.headers,
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "mixed_currencies"
    assert {(i["listing_id"], i["currency"]) for i in problem["items"]} == {
        (str(usd_id), "usd"),
        (str(eur_id), "eur"),
    }


async def test_unknown_or_draft_listing_answers_422(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser
) -> None:
    vendor = await make_vendor(session)
    draft = await make_listing(session, vendor, status=ListingStatus.draft)
    missing = uuid.uuid4()
    draft_id = draft.id
    response = await client.post(
        "/v1/buyer/orders",
        json={
            "items": [
                {"listing_id": str(draft.id), "quantity": 1},
                {"listing_id": str(missing), "quantity": 1},
            ]
        },
        headers=buyer.headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "listing_unavailable"
    assert {i["listing_id"] for i in response.json()["items"]} == {str(draft_id), str(missing)}


async def test_amount_below_stripe_minimum_answers_422_before_stripe(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    vendor = await make_vendor(session)
    cheap = await make_listing(session, vendor, price=20)
    route = mock_create_intent(stripe_api)
    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(cheap.id), "quantity": 2}]},
        headers=buyer.headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_amount"
    assert route.call_count == 0


async def test_quantity_out_of_range_is_a_validation_error(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser
) -> None:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor)
    for quantity in (0, 101):
        response = await client.post(
            "/v1/buyer/orders",
            json={"items": [{"listing_id": str(listing.id), "quantity": quantity}]},
            headers=buyer.headers,
        )
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
    merged = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 60}] * 2},
        headers=buyer.headers,
    )
    assert merged.status_code == 422
    assert merged.json()["code"] == "too_many_items"


async def test_vendor_account_refused_by_stripe_releases_the_reservation(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, stock=3)
    listing_id = listing.id
    mock_create_intent(
        stripe_api, return_value=stripe_error(403, type_="invalid_request_error", message="no")
    )
    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 2}]},
        headers=buyer.headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "stripe_permission_denied"
    assert await _stock(session, listing_id) == 3
    payment = (await session.execute(select(Payment))).scalar_one()
    await session.refresh(payment)
    assert payment.status is PaymentStatus.failed
    assert payment.failure_code == "stripe_permission_denied"
    order = (await session.execute(select(Order))).scalar_one()
    await session.refresh(order)
    assert order.status is OrderStatus.failed


async def test_stripe_down_keeps_the_reservation_for_a_retry(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, stock=3)
    listing_id = listing.id
    mock_create_intent(stripe_api, side_effect=httpx.ConnectTimeout("down"))
    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=buyer.headers,
    )
    assert response.status_code == 503
    assert response.json()["code"] == "stripe_unavailable"
    assert response.headers["Retry-After"]
    payment = (await session.execute(select(Payment))).scalar_one()
    assert payment.status is PaymentStatus.requires_payment
    assert payment.stripe_payment_intent_id is None
    assert await _stock(session, listing_id) == 2
    assert await session.scalar(select(func.count()).select_from(OrderItem)) == 1
