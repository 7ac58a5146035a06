from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.deps import get_session
from marketplace_api.main import create_app
from tests.conftest import AuthUser, build_state, make_settings
from tests.fixtures.catalog import make_listing, make_vendor
from tests.fixtures.stripe import form
from tests.fixtures.stripe_mocks import mock_create_intent


@pytest.fixture
async def on_behalf_client(
    database_url: str, engine: AsyncEngine, session: AsyncSession
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        state=build_state(make_settings(database_url, destination_on_behalf_of=True), engine)
    )

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = _session
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_destination_charge_on_behalf_of_the_vendor_when_configured(
    on_behalf_client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, price=1000)
    route = mock_create_intent(stripe_api)
    response = await on_behalf_client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=buyer.headers,
    )
    assert response.status_code == 201, response.text
    sent = form(route.calls.last.request)
    assert sent["on_behalf_of"] == vendor.stripe_account_id
    assert sent["transfer_data[destination]"] == vendor.stripe_account_id
