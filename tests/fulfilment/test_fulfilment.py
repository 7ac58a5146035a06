"""Vendors ship and see their sales; buyers confirm delivery (releasing held funds) and ask for
refunds; every route answers only for the caller's own orders."""

from __future__ import annotations

import httpx
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.deps import AppState
from marketplace_api.refunds.models import RefundRequest, RefundRequestStatus
from tests.conftest import AuthUser
from tests.fixtures.catalog import make_vendor
from tests.fixtures.money import (
    make_paid,
    refund_handler,
    transfer_handler,
    vendor_headers,
)

SHIPMENT = {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}


async def test_vendor_lists_only_its_own_sales_with_amounts_and_pages(
    client: httpx.AsyncClient, session: AsyncSession, app_state: AppState
) -> None:
    vendor = await make_vendor(session)
    mine = [await make_paid(session, vendors=[vendor], amounts=(1000 + i,)) for i in range(3)]
    await make_paid(session)  # somebody else's sale
    headers = vendor_headers(app_state.settings, vendor)

    first = await client.get("/v1/vendor/orders?limit=2", headers=headers)
    assert first.status_code == 200
    page = first.json()
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    second = await client.get(
        f"/v1/vendor/orders?limit=2&cursor={page['next_cursor']}", headers=headers
    )
    ids = [o["id"] for o in page["items"]] + [o["id"] for o in second.json()["items"]]
    assert sorted(ids) == sorted(str(p.order.id) for p in mine)
    assert second.json()["next_cursor"] is None
    one = (await client.get(f"/v1/vendor/orders/{mine[0].order.id}", headers=headers)).json()
    assert (one["amount"], one["platform_fee"], one["vendor_amount"]) == (1000, 100, 900)
    assert one["transfer"] is None
    assert one["refunds"] == []


async def test_ship_then_confirm_delivery_releases_a_separate_charge(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session, buyer_id=buyer.id)
    headers = vendor_headers(app_state.settings, paid.vendor)
    route = stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    confirm = f"/v1/buyer/orders/{paid.order.id}/confirm-delivery"

    early = await client.post(confirm, headers=buyer.headers)
    assert early.status_code == 409
    assert early.json()["code"] == "order_not_shipped"

    shipped = await client.post(
        f"/v1/vendor/orders/{paid.order.id}/ship", json=SHIPMENT, headers=headers
    )
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["fulfilment_status"] == "shipped"
    assert shipped.json()["shipment"]["tracking_number"] == SHIPMENT["tracking_number"]
    again = await client.post(
        f"/v1/vendor/orders/{paid.order.id}/ship", json=SHIPMENT, headers=headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "order_not_shippable"

    delivered = await client.post(confirm, headers=buyer.headers)
    assert delivered.status_code == 200, delivered.text
    body = delivered.json()
    assert body["fulfilment_status"] == "delivered"
    assert body["transfer"]["status"] == "paid"
    assert body["transfer"]["trigger"] == "buyer"
    assert route.call_count == 1
    twice = await client.post(confirm, headers=buyer.headers)
    assert twice.json()["transfer"]["id"] == body["transfer"]["id"]
    assert route.call_count == 1


async def test_confirm_delivery_of_a_destination_charge_moves_no_money(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session, buyer_id=buyer.id, charge_type=ChargeType.destination)
    await client.post(
        f"/v1/vendor/orders/{paid.order.id}/ship",
        json=SHIPMENT,
        headers=vendor_headers(app_state.settings, paid.vendor),
    )
    response = await client.post(
        f"/v1/buyer/orders/{paid.order.id}/confirm-delivery", headers=buyer.headers
    )
    assert response.status_code == 200
    assert response.json()["transfer"] is None
    assert not stripe_api.calls


async def test_other_peoples_orders_answer_404_and_wrong_roles_403(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    buyer: AuthUser,
    admin: AuthUser,
) -> None:
    paid = await make_paid(session)  # another buyer's order, another vendor's sale
    stranger = vendor_headers(app_state.settings, await make_vendor(session))
    order = paid.order.id
    assert (await client.get(f"/v1/vendor/orders/{order}", headers=stranger)).status_code == 404
    ship = await client.post(f"/v1/vendor/orders/{order}/ship", json=SHIPMENT, headers=stranger)
    assert ship.status_code == 404
    confirm = await client.post(f"/v1/buyer/orders/{order}/confirm-delivery", headers=buyer.headers)
    assert confirm.status_code == 404
    request = await client.post(
        f"/v1/buyer/orders/{order}/refund-requests", json={"reason": "x"}, headers=buyer.headers
    )
    assert request.status_code == 404
    assert (await client.get("/v1/vendor/orders", headers=buyer.headers)).status_code == 403
    release = await client.post(f"/v1/admin/orders/{order}/release", headers=buyer.headers)
    assert release.status_code == 403
    as_admin = await client.post(
        f"/v1/buyer/orders/{order}/confirm-delivery", headers=admin.headers
    )
    assert as_admin.status_code == 403
    assert (await client.post(f"/v1/admin/orders/{order}/release")).status_code == 401


async def test_an_open_refund_request_holds_the_funds_until_the_vendor_acts(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session, buyer_id=buyer.id)
    order_id = paid.order.id  # the app's rollbacks (409) expire the test's objects
    headers = vendor_headers(app_state.settings, paid.vendor)
    transfers = stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    await client.post(f"/v1/vendor/orders/{order_id}/ship", json=SHIPMENT, headers=headers)
    url = f"/v1/buyer/orders/{order_id}/refund-requests"

    created = await client.post(
        url, json={"reason": "Arrived broken", "amount": 500}, headers=buyer.headers
    )
    assert created.status_code == 201, created.text
    second = await client.post(url, json={"reason": "again"}, headers=buyer.headers)
    assert second.status_code == 409
    assert second.json()["code"] == "refund_request_exists"

    blocked = await client.post(
        f"/v1/buyer/orders/{order_id}/confirm-delivery", headers=buyer.headers
    )
    assert blocked.json()["release_blocked_by"] == "refund_request_open"
    assert blocked.json()["transfer"] is None
    seen = (await client.get(f"/v1/vendor/orders/{order_id}", headers=headers)).json()
    assert seen["open_refund_request"]["reason"] == "Arrived broken"

    refund = await client.post(
        f"/v1/vendor/orders/{order_id}/refunds", json={"amount": 500}, headers=headers
    )
    assert refund.status_code == 201, refund.text
    request = (await session.execute(select(RefundRequest))).scalar_one()
    await session.refresh(request)
    assert request.status is RefundRequestStatus.approved

    released = await client.post(
        f"/v1/buyer/orders/{order_id}/confirm-delivery", headers=buyer.headers
    )
    assert released.json()["transfer"]["amount"] == 1350
    assert transfers.call_count == 1


async def test_vendor_declines_a_refund_request(
    client: httpx.AsyncClient, session: AsyncSession, app_state: AppState, buyer: AuthUser
) -> None:
    paid = await make_paid(session, buyer_id=buyer.id)
    headers = vendor_headers(app_state.settings, paid.vendor)
    created = await client.post(
        f"/v1/buyer/orders/{paid.order.id}/refund-requests",
        json={"reason": "changed my mind"},
        headers=buyer.headers,
    )
    decline = f"/v1/vendor/orders/{paid.order.id}/refund-requests/{created.json()['id']}/decline"
    first = await client.post(decline, json={"note": "Used item"}, headers=headers)
    assert first.status_code == 200
    assert first.json()["status"] == "declined"
    second = await client.post(decline, json={"note": "again"}, headers=headers)
    assert second.status_code == 409
    assert second.json()["code"] == "refund_request_closed"
