"""Checkout Session parameters per charge type; buyer cancel; reads and ownership."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.catalog.models import Listing
from marketplace_api.config import ChargeType
from marketplace_api.payments.models import Payment, PaymentStatus
from tests.conftest import AuthUser, MakeUser
from tests.fixtures.catalog import make_listing, make_vendor, payment_intent
from tests.fixtures.stripe import STRIPE_API_BASE, form, ok, stripe_error
from tests.fixtures.stripe_mocks import (
    checkout_session_handler,
    mock_create_intent,
)


async def _checkout(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
    *,
    charge_type: ChargeType | None = None,
    stock: int = 5,
) -> tuple[dict, Listing]:  # type: ignore[type-arg]
    vendor = await make_vendor(session, display_name="Acme", charge_type=charge_type)
    listing = await make_listing(session, vendor, price=1500, stock=stock, title="Blue mug")
    mock_create_intent(stripe_api)
    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 2}]},
        headers=buyer.headers,
    )
    assert response.status_code == 201, response.text
    return response.json(), listing


async def test_checkout_session_for_a_destination_charge(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    body, _ = await _checkout(client, session, buyer, stripe_api)
    payment_id, order = body["payment_id"], body["orders"][0]
    route = stripe_api.post(f"{STRIPE_API_BASE}/v1/checkout/sessions").mock(
        side_effect=checkout_session_handler
    )
    before = datetime.now(UTC)

    response = await client.post(
        f"/v1/buyer/orders/{order['id']}/checkout-session", headers=buyer.headers
    )

    assert response.status_code == 200, response.text
    request = route.calls.last.request
    assert request.headers["Idempotency-Key"] == f"payment:{payment_id}:checkout_session:1"
    assert "Stripe-Account" not in request.headers
    sent = form(request)
    expires_at = int(sent.pop("expires_at"))
    vendor_account = sent.pop("payment_intent_data[transfer_data][destination]")
    assert vendor_account.startswith("acct_")
    assert sent == {
        "mode": "payment",
        "line_items[0][quantity]": "2",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "1500",
        "line_items[0][price_data][product_data][name]": "Blue mug",
        "payment_intent_data[metadata][payment_id]": payment_id,
        "payment_intent_data[metadata][buyer_id]": str(buyer.id),
        "payment_intent_data[metadata][order_ids]": order["id"],
        "payment_intent_data[application_fee_amount]": "300",
        "payment_intent_data[statement_descriptor_suffix]": "Acme",
        "client_reference_id": payment_id,
        "metadata[payment_id]": payment_id,
        "metadata[buyer_id]": str(buyer.id),
        "metadata[order_ids]": order["id"],
        "success_url": "https://shop.example/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": f"https://shop.example/checkout/cancel?payment_id={payment_id}",
        "customer_email": buyer.user.email,
    }
    # Stripe needs >= 30 minutes: the 15-minute reservation is extended to match.
    assert expires_at >= (before + timedelta(minutes=30)).timestamp()
    assert expires_at <= (before + timedelta(minutes=35)).timestamp()
    result = response.json()
    assert result["session_id"].startswith("cs_test_")
    assert result["url"].startswith("https://checkout.stripe.com/")
    payment = await session.get(Payment, uuid.UUID(payment_id))
    assert payment is not None
    await session.refresh(payment)
    assert int(payment.reservation_expires_at.timestamp()) == expires_at
    assert payment.checkout_session_id == result["session_id"]

    again = await client.post(
        f"/v1/buyer/orders/{order['id']}/checkout-session", headers=buyer.headers
    )
    assert again.json()["session_id"] == result["session_id"]  # the open session, no new call
    assert route.call_count == 1


async def test_checkout_session_for_a_direct_charge_is_on_the_connected_account(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    body, _ = await _checkout(client, session, buyer, stripe_api, charge_type=ChargeType.direct)
    route = stripe_api.post(f"{STRIPE_API_BASE}/v1/checkout/sessions").mock(
        side_effect=checkout_session_handler
    )
    response = await client.post(
        f"/v1/buyer/orders/{body['orders'][0]['id']}/checkout-session", headers=buyer.headers
    )
    assert response.status_code == 200
    request = route.calls.last.request
    assert request.headers["Stripe-Account"] == body["stripe_account"]
    sent = form(request)
    assert sent["payment_intent_data[application_fee_amount]"] == "300"
    assert "payment_intent_data[transfer_data][destination]" not in sent
    assert "payment_intent_data[transfer_group]" not in sent


async def test_checkout_session_for_separate_charges_sets_the_transfer_group(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    body, _ = await _checkout(client, session, buyer, stripe_api, charge_type=ChargeType.separate)
    route = stripe_api.post(f"{STRIPE_API_BASE}/v1/checkout/sessions").mock(
        side_effect=checkout_session_handler
    )
    await client.post(
        f"/v1/buyer/orders/{body['orders'][0]['id']}/checkout-session", headers=buyer.headers
    )
    sent = form(route.calls.last.request)
    assert sent["payment_intent_data[transfer_group]"] == f"payment_{body['payment_id']}"
    assert "payment_intent_data[application_fee_amount]" not in sent
    assert "payment_intent_data[transfer_data][destination]" not in sent


async def test_cancel_cancels_the_payment_intent_and_releases_stock(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    body, listing = await _checkout(
        client, session, buyer, stripe_api, charge_type=ChargeType.direct
    )
    listing_id = listing.id
    payment = await session.get(Payment, uuid.UUID(body["payment_id"]))
    assert payment is not None
    pi_id = payment.stripe_payment_intent_id
    route = stripe_api.post(f"{STRIPE_API_BASE}/v1/payment_intents/{pi_id}/cancel").mock(
        return_value=ok(payment_intent(amount=3000, status="canceled", intent_id=pi_id))
    )

    response = await client.post(
        f"/v1/buyer/orders/{body['orders'][0]['id']}/cancel", headers=buyer.headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["payment_status"] == "canceled"
    request = route.calls.last.request
    assert request.headers["Idempotency-Key"] == f"payment:{body['payment_id']}:cancel"
    assert request.headers["Stripe-Account"] == body["stripe_account"]
    assert form(request) == {"cancellation_reason": "requested_by_customer"}
    stock = await session.scalar(
        select(Listing.stock_quantity)
        .where(Listing.id == listing_id)
        .execution_options(populate_existing=True)
    )
    assert stock == 5
    again = await client.post(
        f"/v1/buyer/orders/{body['orders'][0]['id']}/cancel", headers=buyer.headers
    )
    assert again.status_code == 200
    assert route.call_count == 1
    assert (
        await session.scalar(
            select(Listing.stock_quantity)
            .where(Listing.id == listing_id)
            .execution_options(populate_existing=True)
        )
        == 5
    )


async def test_cancel_loses_to_a_payment_that_just_succeeded(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    body, _ = await _checkout(client, session, buyer, stripe_api)
    payment = await session.get(Payment, uuid.UUID(body["payment_id"]))
    assert payment is not None
    pi_id = payment.stripe_payment_intent_id
    stripe_api.post(f"{STRIPE_API_BASE}/v1/payment_intents/{pi_id}/cancel").mock(
        return_value=stripe_error(400, code="payment_intent_unexpected_state")
    )
    stripe_api.get(url__regex=rf"{STRIPE_API_BASE}/v1/payment_intents/{pi_id}(\?.*)?$").mock(
        return_value=ok(
            payment_intent(
                amount=3000,
                status="succeeded",
                intent_id=pi_id,
                metadata={"payment_id": body["payment_id"]},
                latest_charge={"id": "ch_1", "object": "charge", "transfer": "tr_1"},
            )
        )
    )

    response = await client.post(
        f"/v1/buyer/orders/{body['orders'][0]['id']}/cancel", headers=buyer.headers
    )

    assert response.status_code == 409
    assert response.json()["code"] == "order_not_cancellable"
    await session.refresh(payment)
    assert payment.status is PaymentStatus.succeeded
    assert payment.stripe_charge_id == "ch_1"
    assert payment.stripe_transfer_id == "tr_1"


async def test_reads_and_another_buyers_order_is_not_found(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    make_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    body, _ = await _checkout(client, session, buyer, stripe_api)
    order_id = body["orders"][0]["id"]
    second, _ = await _checkout(client, session, buyer, stripe_api)

    page = await client.get("/v1/buyer/orders?limit=1", headers=buyer.headers)
    assert page.status_code == 200
    assert len(page.json()["items"]) == 1
    cursor = page.json()["next_cursor"]
    rest = await client.get(f"/v1/buyer/orders?limit=1&cursor={cursor}", headers=buyer.headers)
    ids = {page.json()["items"][0]["id"], rest.json()["items"][0]["id"]}
    assert ids == {order_id, second["orders"][0]["id"]}
    assert rest.json()["next_cursor"] is None

    one = await client.get(f"/v1/buyer/orders/{order_id}", headers=buyer.headers)
    assert one.json()["payment_status"] == "requires_payment"
    assert one.json()["fulfilment_status"] == "unfulfilled"
    pay = await client.get(f"/v1/buyer/payments/{body['payment_id']}", headers=buyer.headers)
    assert pay.status_code == 200
    assert pay.json()["order_ids"] == [order_id]
    assert pay.json()["client_secret"] == body["client_secret"]

    other = await make_user("buyer")
    for url in (
        f"/v1/buyer/orders/{order_id}",
        f"/v1/buyer/payments/{body['payment_id']}",
    ):
        response = await client.get(url, headers=other.headers)
        assert response.status_code == 404
    cancel = await client.post(f"/v1/buyer/orders/{order_id}/cancel", headers=other.headers)
    assert cancel.status_code == 404
    assert (await client.get("/v1/buyer/orders", headers=other.headers)).json()["items"] == []
