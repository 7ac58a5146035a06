"""`/v1/platform/listings`: active listings of vendors that can sell; filters; keyset pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.catalog.models import Listing, ListingStatus
from marketplace_api.pagination import encode_cursor
from marketplace_api.vendors.models import Vendor
from tests.fixtures.accounts import make_vendor

BASE = datetime(2026, 11, 1, tzinfo=UTC)


async def add_listing(
    session: AsyncSession,
    vendor: Vendor,
    title: str,
    *,
    price: int = 1000,
    currency: str = "usd",
    status: ListingStatus = ListingStatus.active,
    minutes: int = 0,
) -> Listing:
    listing = Listing(
        vendor_id=vendor.id,
        title=title,
        price_amount=price,
        currency=currency,
        stock_quantity=3,
        status=status,
        created_at=BASE + timedelta(minutes=minutes),
    )
    session.add(listing)
    await session.commit()
    return listing


async def titles(client: httpx.AsyncClient, **params: object) -> list[str]:
    response = await client.get("/v1/platform/listings", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


async def test_only_active_listings_of_vendors_that_can_sell(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    selling = await make_vendor(session, active=True)
    onboarding = await make_vendor(session, stripe_account_id="acct_onb2")
    suspended = await make_vendor(session, active=True, suspended_at=BASE)
    await add_listing(session, selling, "visible", minutes=1)
    await add_listing(session, selling, "draft", status=ListingStatus.draft)
    await add_listing(session, selling, "archived", status=ListingStatus.archived)
    hidden_onb = await add_listing(session, onboarding, "not onboarded")
    await add_listing(session, suspended, "suspended")
    assert await titles(client) == ["visible"]

    one = await client.get(f"/v1/platform/listings/{hidden_onb.id}")
    assert one.status_code == 404
    assert one.json()["code"] == "listing_not_found"


async def test_filters_vendor_currency_price_and_text(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    a = await make_vendor(session, active=True)
    b = await make_vendor(session, active=True)
    await add_listing(session, a, "Blue mug", price=1500, minutes=1)
    await add_listing(session, a, "Red mug", price=2500, minutes=2)
    await add_listing(session, b, "Green bowl", price=3000, minutes=3)
    await add_listing(session, b, "Yen mug", price=900, currency="jpy", minutes=4)
    await add_listing(session, b, "100% wool", price=5000, minutes=5)
    await add_listing(session, b, "100 percent cotton", price=5000, minutes=6)
    await add_listing(session, b, "snake_case tee", price=5000, minutes=7)
    await add_listing(session, b, "snakeXcase tee", price=5000, minutes=8)

    assert await titles(client, vendor_id=str(a.id)) == ["Red mug", "Blue mug"]
    assert await titles(client, currency="JPY") == ["Yen mug"]
    assert await titles(client, currency="usd", min_price=1500, max_price=2500) == [
        "Red mug",
        "Blue mug",
    ]
    assert await titles(client, q="MUG") == ["Yen mug", "Red mug", "Blue mug"]
    # % and _ are matched literally, not as wildcards.
    assert await titles(client, q="100%") == ["100% wool"]
    assert await titles(client, q="snake_case") == ["snake_case tee"]

    no_currency = await client.get("/v1/platform/listings", params={"min_price": 100})
    assert no_currency.status_code == 422
    assert no_currency.json()["code"] == "price_filter_needs_currency"


async def test_keyset_pages_are_stable_and_complete(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    vendor = await make_vendor(session, active=True)
    # Ties on created_at are ordered by id: several listings share a timestamp.
    expected = []
    for i in range(7):
        listing = await add_listing(session, vendor, f"item {i}", minutes=i // 3)
        expected.append(listing)
    expected.sort(key=lambda listing: (listing.created_at, listing.id), reverse=True)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/platform/listings", params=params)).json()
        pages += 1
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # A listing added to the front while paging does not shift later pages.
        if pages == 1:
            await add_listing(session, vendor, "late", minutes=99)
    assert pages == 3
    assert seen == [str(listing.id) for listing in expected]


async def test_bad_cursor_and_limit_are_422(client: httpx.AsyncClient) -> None:
    bad = await client.get("/v1/platform/listings", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_cursor"
    naive = encode_cursor(datetime(2026, 1, 1), uuid.uuid4())  # noqa: DTZ001
    assert (await client.get("/v1/platform/listings", params={"cursor": naive})).json()[
        "code"
    ] == "invalid_cursor"
    for limit in (0, 101):
        response = await client.get("/v1/platform/listings", params={"limit": limit})
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"


async def test_public_listing_detail(client: httpx.AsyncClient, session: AsyncSession) -> None:
    vendor = await make_vendor(session, active=True)
    listing = await add_listing(session, vendor, "Lamp", price=4200)
    response = await client.get(f"/v1/platform/listings/{listing.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "Lamp"
    assert body["price_amount"] == 4200
    assert body["vendor_id"] == str(vendor.id)
    assert "status" not in body
