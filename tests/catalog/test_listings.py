"""`/v1/vendor/listings`: a vendor's own listings, prices validated, others' answer 404."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.catalog.models import Listing, ListingStatus
from tests.conftest import AuthUser, MakeUser
from tests.fixtures.accounts import make_vendor

MUG = {
    "title": "Stoneware mug",
    "description": "350 ml",
    "price_amount": 2500,
    "currency": "USD",
    "stock_quantity": 10,
}


@pytest.fixture
async def seller(session: AsyncSession, vendor_user: AuthUser) -> AuthUser:
    await make_vendor(session, user=vendor_user.user)
    return vendor_user


async def test_create_get_update_listing(client: httpx.AsyncClient, seller: AuthUser) -> None:
    created = await client.post("/v1/vendor/listings", json=MUG, headers=seller.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["currency"] == "usd"
    assert body["status"] == "draft"
    assert body["price_amount"] == 2500

    got = await client.get(f"/v1/vendor/listings/{body['id']}", headers=seller.headers)
    assert got.json() == body

    patched = await client.patch(
        f"/v1/vendor/listings/{body['id']}",
        json={"price_amount": 3000, "status": "active", "description": None},
        headers=seller.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["price_amount"] == 3000
    assert patched.json()["status"] == "active"
    assert patched.json()["description"] is None
    assert patched.json()["title"] == "Stoneware mug"


async def test_listing_needs_a_vendor_profile(
    client: httpx.AsyncClient, vendor_user: AuthUser
) -> None:
    response = await client.post("/v1/vendor/listings", json=MUG, headers=vendor_user.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "vendor_profile_required"


@pytest.mark.parametrize(
    ("price", "currency", "code", "field"),
    [
        (49, "usd", "invalid_amount", "price_amount"),  # below Stripe's 0.50 USD minimum
        (0, "usd", "validation_error", "price_amount"),  # outside the schema's 1..99,999,999
        (-5, "usd", "validation_error", "price_amount"),
        (49, "jpy", "invalid_amount", "price_amount"),  # zero-decimal: 50 yen minimum
        (1005, "kwd", "invalid_amount", "price_amount"),  # three-decimal: multiple of 10
        (150, "kwd", "invalid_amount", "price_amount"),  # below the kwd minimum
        (2500, "xyz", "unsupported_currency", "currency"),
    ],
)
async def test_invalid_prices_are_422_with_the_field(
    client: httpx.AsyncClient,
    seller: AuthUser,
    price: int,
    currency: str,
    code: str,
    field: str,
) -> None:
    response = await client.post(
        "/v1/vendor/listings",
        json={**MUG, "price_amount": price, "currency": currency},
        headers=seller.headers,
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["errors"][0]["loc"] == ["body", field]


@pytest.mark.parametrize(("price", "currency"), [(50, "usd"), (50, "jpy"), (1000, "kwd")])
async def test_minimum_prices_are_accepted(
    client: httpx.AsyncClient, seller: AuthUser, price: int, currency: str
) -> None:
    response = await client.post(
        "/v1/vendor/listings",
        json={**MUG, "price_amount": price, "currency": currency},
        headers=seller.headers,
    )
    assert response.status_code == 201, response.text


async def test_patch_validates_price_against_the_new_currency(
    client: httpx.AsyncClient, seller: AuthUser
) -> None:
    listing = (await client.post("/v1/vendor/listings", json=MUG, headers=seller.headers)).json()
    # 2500 usd cents is fine; 2505 kwd fils is not a multiple of 10.
    response = await client.patch(
        f"/v1/vendor/listings/{listing['id']}",
        json={"currency": "kwd", "price_amount": 2505},
        headers=seller.headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_amount"
    unchanged = await client.get(f"/v1/vendor/listings/{listing['id']}", headers=seller.headers)
    assert unchanged.json()["currency"] == "usd"


async def test_another_vendors_listing_is_404(
    client: httpx.AsyncClient, seller: AuthUser, make_user: MakeUser, session: AsyncSession
) -> None:
    listing = (await client.post("/v1/vendor/listings", json=MUG, headers=seller.headers)).json()
    other = await make_user("vendor")
    await make_vendor(session, user=other.user)
    url = f"/v1/vendor/listings/{listing['id']}"
    for method, body in [("GET", None), ("PATCH", {"title": "Mine now"}), ("DELETE", None)]:
        response = await client.request(method, url, json=body, headers=other.headers)
        assert response.status_code == 404, method
        assert response.json()["code"] == "listing_not_found"
    listed = await client.get("/v1/vendor/listings", headers=other.headers)
    assert listed.json() == {"items": [], "next_cursor": None}
    mine = await client.get(url, headers=seller.headers)
    assert mine.json()["title"] == "Stoneware mug"


async def test_buyer_gets_403_on_vendor_listing_routes(
    client: httpx.AsyncClient, seller: AuthUser, buyer: AuthUser
) -> None:
    listing = (await client.post("/v1/vendor/listings", json=MUG, headers=seller.headers)).json()
    response = await client.get(f"/v1/vendor/listings/{listing['id']}", headers=buyer.headers)
    assert response.status_code == 403


async def test_delete_archives_and_is_idempotent(
    client: httpx.AsyncClient, seller: AuthUser, session: AsyncSession
) -> None:
    listing = (
        await client.post(
            "/v1/vendor/listings", json={**MUG, "status": "active"}, headers=seller.headers
        )
    ).json()
    url = f"/v1/vendor/listings/{listing['id']}"
    assert (await client.delete(url, headers=seller.headers)).status_code == 204
    assert (await client.delete(url, headers=seller.headers)).status_code == 204
    row = await session.get(Listing, listing["id"], populate_existing=True)
    assert row is not None  # soft delete: the row stays
    assert row.status is ListingStatus.archived

    edit = await client.patch(url, json={"title": "New"}, headers=seller.headers)
    assert edit.status_code == 409
    assert edit.json()["code"] == "listing_archived"
    to_active = await client.patch(url, json={"status": "active"}, headers=seller.headers)
    assert to_active.status_code == 409
    assert to_active.json()["code"] == "invalid_listing_transition"
    revived = await client.patch(
        url, json={"status": "draft", "title": "New"}, headers=seller.headers
    )
    assert revived.status_code == 200
    assert revived.json()["status"] == "draft"
    assert revived.json()["title"] == "New"


async def test_own_listings_are_paginated_and_filtered(
    client: httpx.AsyncClient, seller: AuthUser
) -> None:
    ids = []
    for i in range(5):
        status = "active" if i % 2 == 0 else "draft"
        created = await client.post(
            "/v1/vendor/listings",
            json={**MUG, "title": f"Mug {i}", "status": status},
            headers=seller.headers,
        )
        ids.append(created.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get("/v1/vendor/listings", params=params, headers=seller.headers)
        ).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen)) == 5
    drafts = (
        await client.get("/v1/vendor/listings", params={"status": "draft"}, headers=seller.headers)
    ).json()
    assert {item["status"] for item in drafts["items"]} == {"draft"}
    assert len(drafts["items"]) == 2
