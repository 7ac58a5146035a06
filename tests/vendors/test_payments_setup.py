"""`POST /v1/vendor/payments/setup`: one Stripe account per vendor, a fresh link each time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.deps import get_session
from marketplace_api.main import create_app
from marketplace_api.vendors.models import Vendor, VendorStatus
from tests.conftest import AuthUser, MakeUser, build_state, make_settings
from tests.fixtures.accounts import account, make_vendor
from tests.fixtures.stripe import form, ok, stripe_error

LINK = {
    "object": "account_link",
    "created": 1793000000,
    "expires_at": 1793000300,
    "url": "https://connect.stripe.com/setup/e/acct_1/Ab12Cd34",
}


def mock_link(stripe_api: respx.MockRouter) -> respx.Route:
    return stripe_api.post("/v1/account_links").mock(return_value=ok(LINK))


async def stored(session: AsyncSession, vendor_id: uuid.UUID) -> Vendor:
    vendor = await session.get(Vendor, vendor_id, populate_existing=True)
    assert vendor is not None
    return vendor


async def test_setup_creates_account_and_onboarding_link(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session, user=vendor_user.user, description="Hand-made mugs")
    acct = account("acct_1QaBcD2eZvKYlo2C", vendor_id=vendor.id, created=1793000000)
    create = stripe_api.post("/v1/accounts").mock(return_value=ok(acct))
    link = mock_link(stripe_api)

    response = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "stripe_account_id": "acct_1QaBcD2eZvKYlo2C",
        "onboarding_url": LINK["url"],
        "expires_at": "2026-10-26T07:38:20Z",
        "status": "onboarding",
    }
    sent = create.calls.last.request
    assert form(sent) == {
        "country": "US",
        "email": vendor_user.user.email,
        "controller[stripe_dashboard][type]": "express",
        "controller[fees][payer]": "application",
        "controller[losses][payments]": "application",
        "controller[requirement_collection]": "stripe",
        "capabilities[card_payments][requested]": "true",
        "capabilities[transfers][requested]": "true",
        "business_profile[name]": "Acme Ceramics",
        "business_profile[product_description]": "Hand-made mugs",
        "metadata[vendor_id]": str(vendor.id),
        "metadata[user_id]": str(vendor_user.id),
    }
    assert "type" not in form(sent)  # controller properties, never the deprecated type too
    assert sent.headers["Idempotency-Key"] == f"vendor:{vendor.id}:account"
    assert "Stripe-Account" not in sent.headers

    link_request = link.calls.last.request
    assert form(link_request) == {
        "account": "acct_1QaBcD2eZvKYlo2C",
        "type": "account_onboarding",
        "refresh_url": "https://shop.example/vendor/payments/refresh",
        "return_url": "https://shop.example/vendor/payments/return",
        "collection_options[fields]": "currently_due",
    }
    assert link_request.headers["Idempotency-Key"].startswith(f"vendor:{vendor.id}:account_link:")

    row = await stored(session, vendor.id)
    assert row.stripe_account_id == "acct_1QaBcD2eZvKYlo2C"
    assert row.status is VendorStatus.onboarding
    assert row.requirements_currently_due == acct["requirements"]["currently_due"]
    assert row.stripe_account_synced_at is not None
    assert int(row.stripe_account_synced_at.timestamp()) == 1793000000


async def test_second_setup_reuses_the_account_with_a_fresh_link(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session, user=vendor_user.user)
    create = stripe_api.post("/v1/accounts").mock(
        return_value=ok(account("acct_once", vendor_id=vendor.id))
    )
    link = mock_link(stripe_api)
    first = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)
    second = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)
    assert first.status_code == second.status_code == 200
    assert second.json()["stripe_account_id"] == "acct_once"
    assert create.call_count == 1
    assert link.call_count == 2
    keys = {c.request.headers["Idempotency-Key"] for c in link.calls}
    assert len(keys) == 2  # a new link each time, never a replay of a used one


async def test_setup_needs_a_profile(
    client: httpx.AsyncClient, vendor_user: AuthUser, stripe_api: respx.MockRouter
) -> None:
    create = stripe_api.post("/v1/accounts")
    response = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "vendor_profile_required"
    assert not create.called


async def test_setup_refused_after_deauthorization(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    from datetime import UTC, datetime

    await make_vendor(
        session,
        user=vendor_user.user,
        stripe_account_id="acct_gone",
        deauthorized_at=datetime.now(UTC),
    )
    link = mock_link(stripe_api)
    response = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "vendor_account_disconnected"
    assert not link.called


@pytest.mark.parametrize(
    ("stripe_response", "status", "code"),
    [
        (
            stripe_error(400, code="parameter_invalid", param="country"),
            502,
            "stripe_request_rejected",
        ),
        (stripe_error(403, type_="invalid_request_error"), 409, "stripe_permission_denied"),
        (stripe_error(429, code="rate_limit"), 503, "stripe_rate_limited"),
        (stripe_error(500, type_="api_error"), 503, "stripe_unavailable"),
        (stripe_error(503, type_="api_error"), 503, "stripe_unavailable"),
        (httpx.ConnectError("connection refused"), 503, "stripe_unavailable"),
    ],
)
async def test_stripe_errors_on_account_creation_leave_the_vendor_untouched(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
    stripe_response: httpx.Response | Exception,
    status: int,
    code: str,
) -> None:
    vendor = await make_vendor(session, user=vendor_user.user)
    create = stripe_api.post("/v1/accounts")
    if isinstance(stripe_response, Exception):
        create.mock(side_effect=stripe_response)
    else:
        create.mock(return_value=stripe_response)
    link = mock_link(stripe_api)

    response = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    if status == 503:
        assert response.headers["Retry-After"]
    assert "error" not in response.json()  # Stripe's body is never leaked
    assert not link.called
    row = await stored(session, vendor.id)
    assert row.stripe_account_id is None
    assert row.status is VendorStatus.not_started
    assert row.stripe_account_synced_at is None


async def test_link_failure_keeps_the_created_account_for_the_retry(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session, user=vendor_user.user)
    create = stripe_api.post("/v1/accounts").mock(
        return_value=ok(account("acct_kept", vendor_id=vendor.id))
    )
    link = stripe_api.post("/v1/account_links").mock(
        side_effect=[stripe_error(500, type_="api_error"), ok(LINK)]
    )
    failed = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)
    assert failed.status_code == 503
    assert (await stored(session, vendor.id)).stripe_account_id == "acct_kept"

    retried = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)
    assert retried.status_code == 200
    assert retried.json()["stripe_account_id"] == "acct_kept"
    assert create.call_count == 1
    assert link.call_count == 2


async def test_without_stripe_key_setup_answers_503(
    database_url: str, engine: AsyncEngine, make_user: MakeUser, session: AsyncSession
) -> None:
    settings = make_settings(database_url, stripe_secret_key=None)
    app = create_app(state=build_state(settings, engine))

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = _session
    vendor = await make_user("vendor")
    await make_vendor(session, user=vendor.user)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        response = await http.post("/v1/vendor/payments/setup", headers=vendor.headers)
        # Everything not backed by Stripe keeps working.
        config = await http.get("/v1/vendor/payments/config", headers=vendor.headers)
    assert response.status_code == 503
    assert response.json()["code"] == "stripe_not_configured"
    assert config.status_code == 200
    assert config.json()["needs_onboarding"] is True


async def test_concurrent_setups_store_exactly_one_account(
    committed_client: httpx.AsyncClient,
    committed_engine: AsyncEngine,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    user = await make_committed_user("vendor")
    profile = {"display_name": "Racer", "country": "US", "default_currency": "usd"}
    put = await committed_client.put("/v1/vendor/profile", json=profile, headers=user.headers)
    assert put.status_code == 200
    vendor_id = put.json()["id"]

    # Stripe's idempotency: the same key answers the same account; a new key a new account.
    accounts_by_key: dict[str, dict[str, object]] = {}

    async def create_account(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)  # both requests are in flight together
        key = request.headers["Idempotency-Key"]
        acct = accounts_by_key.setdefault(key, account(vendor_id=vendor_id))
        return ok(acct)

    create = stripe_api.post("/v1/accounts").mock(side_effect=create_account)
    mock_link(stripe_api)

    responses = await asyncio.gather(
        *[
            committed_client.post("/v1/vendor/payments/setup", headers=user.headers)
            for _ in range(5)
        ]
    )

    assert [r.status_code for r in responses] == [200] * 5
    assert create.call_count >= 2  # the calls really raced past the "no account yet" check
    keys = {c.request.headers["Idempotency-Key"] for c in create.calls}
    assert keys == {f"vendor:{vendor_id}:account"}
    account_ids = {r.json()["stripe_account_id"] for r in responses}
    assert len(account_ids) == 1
    async with AsyncSession(committed_engine) as s:
        rows = (await s.scalars(select(Vendor.stripe_account_id))).all()
    assert rows == list(account_ids)


async def test_concurrent_setups_never_store_two_accounts_even_if_stripe_made_two(
    committed_client: httpx.AsyncClient,
    committed_engine: AsyncEngine,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    """If Stripe forgot the key (kept >= 24 h), the DB still keeps one account per vendor."""
    user = await make_committed_user("vendor")
    profile = {"display_name": "Racer", "country": "US", "default_currency": "usd"}
    put = await committed_client.put("/v1/vendor/profile", json=profile, headers=user.headers)
    vendor_id = put.json()["id"]

    async def create_account(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return ok(account(vendor_id=vendor_id))  # a different account every call

    stripe_api.post("/v1/accounts").mock(side_effect=create_account)
    mock_link(stripe_api)
    responses = await asyncio.gather(
        *[
            committed_client.post("/v1/vendor/payments/setup", headers=user.headers)
            for _ in range(3)
        ]
    )
    assert [r.status_code for r in responses] == [200] * 3
    async with AsyncSession(committed_engine) as s:
        stored_id = await s.scalar(select(Vendor.stripe_account_id))
    assert {r.json()["stripe_account_id"] for r in responses} == {stored_id}
