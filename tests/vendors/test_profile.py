"""`/v1/vendor/profile` and the public vendor page."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import AuthUser, MakeUser
from tests.fixtures.accounts import make_vendor

PROFILE = {
    "display_name": "  Acme Ceramics ",
    "description": "Hand-made mugs",
    "country": "us",
    "default_currency": "USD",
}


async def test_put_creates_then_replaces_profile(
    client: httpx.AsyncClient, vendor_user: AuthUser
) -> None:
    created = await client.put("/v1/vendor/profile", json=PROFILE, headers=vendor_user.headers)
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["display_name"] == "Acme Ceramics"
    assert body["country"] == "US"
    assert body["default_currency"] == "usd"
    assert body["status"] == "not_started"
    assert body["stripe_account_id"] is None
    assert body["can_accept_payments"] is False

    replaced = await client.put(
        "/v1/vendor/profile",
        json={**PROFILE, "display_name": "Acme Studio", "country": "DE", "default_currency": "eur"},
        headers=vendor_user.headers,
    )
    assert replaced.status_code == 200
    assert replaced.json()["id"] == body["id"]  # one vendor per user
    assert replaced.json()["country"] == "DE"

    got = await client.get("/v1/vendor/profile", headers=vendor_user.headers)
    assert got.json()["display_name"] == "Acme Studio"


async def test_profile_missing_answers_404_and_never_shows_another_vendor(
    client: httpx.AsyncClient, session: AsyncSession, make_user: MakeUser
) -> None:
    other = await make_user("vendor")
    await make_vendor(session, user=other.user)
    me = await make_user("vendor")
    response = await client.get("/v1/vendor/profile", headers=me.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "vendor_profile_not_found"


async def test_unsupported_default_currency_is_422(
    client: httpx.AsyncClient, vendor_user: AuthUser
) -> None:
    response = await client.put(
        "/v1/vendor/profile",
        json={**PROFILE, "default_currency": "xyz"},
        headers=vendor_user.headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "unsupported_currency"


async def test_country_is_locked_once_the_stripe_account_exists(
    client: httpx.AsyncClient, session: AsyncSession, vendor_user: AuthUser
) -> None:
    await make_vendor(session, user=vendor_user.user, stripe_account_id="acct_locked")
    response = await client.put(
        "/v1/vendor/profile", json={**PROFILE, "country": "FR"}, headers=vendor_user.headers
    )
    assert response.status_code == 409
    assert response.json()["code"] == "vendor_country_locked"
    same_country = await client.put("/v1/vendor/profile", json=PROFILE, headers=vendor_user.headers)
    assert same_country.status_code == 200


async def test_buyers_and_anonymous_cannot_use_vendor_routes(
    client: httpx.AsyncClient, buyer: AuthUser
) -> None:
    for method, path in [
        ("GET", "/v1/vendor/profile"),
        ("PUT", "/v1/vendor/profile"),
        ("POST", "/v1/vendor/payments/setup"),
        ("GET", "/v1/vendor/payments/config"),
        ("GET", "/v1/vendor/listings"),
        ("POST", "/v1/vendor/listings"),
    ]:
        as_buyer = await client.request(method, path, headers=buyer.headers, json=PROFILE)
        assert as_buyer.status_code == 403, (method, path)
        anonymous = await client.request(method, path, json=PROFILE)
        assert anonymous.status_code == 401, (method, path)


async def test_public_vendor_page_only_for_vendors_that_can_sell(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    selling = await make_vendor(session, active=True, description="Mugs")
    onboarding = await make_vendor(session, stripe_account_id="acct_onb")
    ok = await client.get(f"/v1/platform/vendors/{selling.id}")
    assert ok.status_code == 200
    assert ok.json() == {
        "id": str(selling.id),
        "display_name": "Acme Ceramics",
        "description": "Mugs",
        "country": "US",
        "default_currency": "usd",
    }
    hidden = await client.get(f"/v1/platform/vendors/{onboarding.id}")
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "vendor_not_found"
