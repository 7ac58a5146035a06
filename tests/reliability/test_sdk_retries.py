"""With `STRIPE_MAX_NETWORK_RETRIES` > 0 the SDK retries a failed request itself: every attempt
must carry the Idempotency-Key of the first, so Stripe executes it at most once. (The rest of the
suite runs with 0 retries so that one fault is one HTTP attempt. The SDK sleeps 0.5-1 s between
attempts: this is the suite's only slow test.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.deps import get_session
from marketplace_api.main import create_app
from marketplace_api.payments.models import Payment
from tests.conftest import AuthUser, build_state, make_settings
from tests.fixtures.catalog import make_listing, make_vendor
from tests.fixtures.stripe import stripe_error
from tests.fixtures.stripe_mocks import (
    create_intent_handler,
    mock_create_intent,
)
from tests.reliability.faults import bodies, keys, successes


async def test_sdk_retries_of_one_request_reuse_its_idempotency_key(
    database_url: str,
    engine: AsyncEngine,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    settings = make_settings(database_url, stripe_max_network_retries=2)
    app = create_app(state=build_state(settings, engine))

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session

    app.dependency_overrides[get_session] = _session
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, price=2500, stock=3)
    route = mock_create_intent(
        stripe_api,
        side_effect=[
            stripe_error(500, type_="api_error"),
            httpx.ReadTimeout,
            create_intent_handler,
        ],
    )

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        response = await client.post(
            "/v1/buyer/orders",
            json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
            headers=buyer.headers,
        )

    assert response.status_code == 201, response.text  # one API request, three HTTP attempts
    payment = (await session.execute(select(Payment))).scalar_one()
    assert keys(route) == [f"payment:{payment.id}:create"] * 3
    first, *others = bodies(route)
    assert all(body == first for body in others)
    assert successes(route) == 1
    assert payment.stripe_payment_intent_id == route.calls.last.response.json()["id"]
