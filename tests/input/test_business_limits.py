"""What Stripe or the database would refuse later is refused at the edge: listing prices outside
Stripe's charge range, unknown country codes, report periods outside the calendar, tracking URLs
longer than their column once normalised."""

from __future__ import annotations

import uuid

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.money import MAXIMUM_CHARGE_AMOUNT, SUPPORTED_CURRENCIES
from marketplace_api.orders.models import Order
from tests.conftest import AuthUser
from tests.fixtures.accounts import make_vendor
from tests.fixtures.catalog import make_listing
from tests.fixtures.catalog import make_vendor as make_selling_vendor
from tests.fixtures.stripe import form
from tests.fixtures.stripe_mocks import mock_create_intent

LISTING = {"title": "Mug", "currency": "usd", "stock_quantity": 5}


@pytest.fixture
async def seller(session: AsyncSession, vendor_user: AuthUser) -> AuthUser:
    await make_vendor(session, user=vendor_user.user)
    return vendor_user


async def test_listing_prices_follow_stripes_charge_range_in_every_currency(
    client: httpx.AsyncClient, seller: AuthUser
) -> None:
    for currency in SUPPORTED_CURRENCIES.values():
        step = currency.amount_step
        highest = currency.maximum_charge_amount
        assert highest <= MAXIMUM_CHARGE_AMOUNT < highest + step
        body = {**LISTING, "currency": currency.code}
        at_max = await client.post(
            "/v1/vendor/listings", json={**body, "price_amount": highest}, headers=seller.headers
        )
        assert at_max.status_code == 201, (currency.code, at_max.text)
        listing_id = at_max.json()["id"]
        for price in (highest + step, currency.minimum_charge_amount - step, 10**12, 2**63 - 1):
            if price < 1:
                continue
            created = await client.post(
                "/v1/vendor/listings", json={**body, "price_amount": price}, headers=seller.headers
            )
            assert created.status_code == 422, (currency.code, price, created.text)
            assert created.json()["errors"][0]["loc"] == ["body", "price_amount"]
            updated = await client.patch(
                f"/v1/vendor/listings/{listing_id}",
                json={"price_amount": price},
                headers=seller.headers,
            )
            assert updated.status_code == 422, (currency.code, price, updated.text)
            assert updated.json()["errors"][0]["loc"] == ["body", "price_amount"]


async def test_changing_only_the_currency_rechecks_the_price_against_its_range(
    client: httpx.AsyncClient, seller: AuthUser
) -> None:
    # 99,999,999 is a valid usd price but not a kwd one (three decimals: a multiple of 10).
    created = await client.post(
        "/v1/vendor/listings",
        json={**LISTING, "price_amount": MAXIMUM_CHARGE_AMOUNT},
        headers=seller.headers,
    )
    assert created.status_code == 201, created.text
    updated = await client.patch(
        f"/v1/vendor/listings/{created.json()['id']}",
        json={"currency": "kwd"},
        headers=seller.headers,
    )
    assert updated.status_code == 422
    assert updated.json()["code"] == "invalid_amount"


async def test_a_listing_at_the_maximum_price_can_be_bought_and_two_units_cannot(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_selling_vendor(session)
    listing_id = str((await make_listing(session, vendor, price=MAXIMUM_CHARGE_AMOUNT)).id)
    route = mock_create_intent(stripe_api)

    two = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": listing_id, "quantity": 2}]},
        headers=buyer.headers,
    )
    assert two.status_code == 422
    assert two.json()["code"] == "invalid_amount"
    assert route.call_count == 0

    one = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": listing_id, "quantity": 1}]},
        headers=buyer.headers,
    )
    assert one.status_code == 201, one.text
    assert form(route.calls.last.request)["amount"] == str(MAXIMUM_CHARGE_AMOUNT)


async def test_platform_config_publishes_each_currencys_charge_range(
    client: httpx.AsyncClient,
) -> None:
    currencies = (await client.get("/v1/platform/config")).json()["currencies"]
    ranges = {
        c["code"]: (c["minimum_charge_amount"], c["maximum_charge_amount"]) for c in currencies
    }
    assert ranges["usd"] == (50, 99_999_999)
    assert ranges["kwd"] == (160, 99_999_990)


@pytest.mark.parametrize("country", ["XX", "UK", "EU", "ZZ", "U1", "USA", "u"])
async def test_shipping_and_vendor_countries_must_be_iso_3166_alpha_2(
    client: httpx.AsyncClient, buyer: AuthUser, vendor_user: AuthUser, country: str
) -> None:
    address = {"line1": "1 Main St", "city": "Springfield", "country": country}
    shipping = {"name": "Jenny Rosen", "address": address}
    order = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(uuid.uuid4()), "quantity": 1}], "shipping": shipping},
        headers=buyer.headers,
    )
    assert order.status_code == 422
    assert [e["loc"] for e in order.json()["errors"]] == [
        ["body", "shipping", "address", "country"]
    ]
    profile = await client.put(
        "/v1/vendor/profile",
        json={"display_name": "Acme", "country": country, "default_currency": "usd"},
        headers=vendor_user.headers,
    )
    assert profile.status_code == 422
    assert [e["loc"] for e in profile.json()["errors"]] == [["body", "country"]]


async def test_countries_are_stored_upper_case_everywhere(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    profile = await client.put(
        "/v1/vendor/profile",
        json={"display_name": "Acme", "country": "de", "default_currency": "eur"},
        headers=vendor_user.headers,
    )
    assert profile.status_code == 200, profile.text
    assert profile.json()["country"] == "DE"

    listing = await make_listing(session, await make_selling_vendor(session))
    mock_create_intent(stripe_api)
    address = {"line1": "1 Main St", "city": "Springfield", "country": "us"}
    created = await client.post(
        "/v1/buyer/orders",
        json={
            "items": [{"listing_id": str(listing.id), "quantity": 1}],
            "shipping": {"name": "Jenny Rosen", "address": address},
        },
        headers=buyer.headers,
    )
    assert created.status_code == 201, created.text
    answered = created.json()["orders"][0]
    assert answered["shipping"]["address"]["country"] == "US"
    order = await session.get(Order, uuid.UUID(answered["id"]), populate_existing=True)
    assert order is not None
    assert order.shipping is not None
    assert order.shipping["address"]["country"] == "US"


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00:00+14:00", "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00"),
    ],
)
async def test_report_period_outside_utc_calendar_is_a_422(
    client: httpx.AsyncClient, admin: AuthUser, start: str, end: str
) -> None:
    response = await client.get(
        "/v1/admin/reports/summary", params={"from": start, "to": end}, headers=admin.headers
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["type"] == "datetime_out_of_range"


async def test_report_period_may_mix_naive_utc_and_offset_times(
    client: httpx.AsyncClient, admin: AuthUser
) -> None:
    response = await client.get(
        "/v1/admin/reports/summary",
        params={"from": "2026-01-01T00:00:00", "to": "2026-02-01T00:00:00+01:00"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["from"] == "2026-01-01T00:00:00Z"


async def test_tracking_url_longer_than_its_column_once_normalised_is_a_422(
    client: httpx.AsyncClient, vendor_user: AuthUser
) -> None:
    # 1,813 characters sent; each space becomes %20, so 3,013 once normalised.
    url = "https://track.example/" + "a b" * 597
    assert len(url) < 2000
    response = await client.post(
        f"/v1/vendor/orders/{uuid.uuid4()}/ship",
        json={"carrier": "UPS", "tracking_number": "1Z", "tracking_url": url},
        headers=vendor_user.headers,
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["loc"] == ["body", "tracking_url"]
    assert error["type"] == "url_too_long"


@pytest.mark.parametrize(("given", "kept"), [("xk", "XK"), ("US", "US"), ("gb", "GB")])
def test_kosovo_and_assigned_codes_are_countries(given: str, kept: str) -> None:
    """XK is user-assigned in ISO 3166-1, but it is the code Stripe and carriers use for Kosovo."""
    from pydantic import TypeAdapter

    from marketplace_api.inputs import CountryCode

    assert TypeAdapter(CountryCode).validate_python(given) == kept
