"""50 buyers at once for the last unit, each request on its own connection with real commits."""

from __future__ import annotations

import asyncio

import httpx
import respx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.catalog.models import Listing
from marketplace_api.orders.models import Order
from marketplace_api.payments.models import Payment
from tests.conftest import MakeUser
from tests.fixtures.catalog import make_listing, make_vendor
from tests.fixtures.stripe_mocks import mock_create_intent

BUYERS = 50


async def test_fifty_buyers_for_the_last_unit_sell_it_once(
    committed_engine: AsyncEngine,
    committed_client: httpx.AsyncClient,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    async with AsyncSession(committed_engine, expire_on_commit=False) as s:
        vendor = await make_vendor(s)
        listing = await make_listing(s, vendor, stock=1)
    buyers = [await make_committed_user("buyer") for _ in range(BUYERS)]
    route = mock_create_intent(stripe_api)
    body = {"items": [{"listing_id": str(listing.id), "quantity": 1}]}

    responses = await asyncio.gather(
        *[committed_client.post("/v1/buyer/orders", json=body, headers=b.headers) for b in buyers]
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (BUYERS - 1)
    refused = [r.json() for r in responses if r.status_code == 409]
    assert {p["code"] for p in refused} == {"out_of_stock"}
    assert {p["listing_id"] for p in refused} == {str(listing.id)}
    assert route.call_count == 1
    async with AsyncSession(committed_engine) as s:
        assert await s.scalar(select(func.count()).select_from(Payment)) == 1
        assert await s.scalar(select(func.count()).select_from(Order)) == 1
        stock = await s.scalar(select(Listing.stock_quantity).where(Listing.id == listing.id))
        assert stock == 0
