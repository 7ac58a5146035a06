"""Who holds an Idempotency-Key: a running request holds it for as long as it runs, however
slow; a holder that died frees it at once (its lock ends with its database connection)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import respx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.payments.models import Payment
from tests.conftest import MakeUser
from tests.fixtures.catalog import make_listing, make_vendor
from tests.fixtures.stripe_mocks import (
    create_intent_handler,
    mock_create_intent,
)
from tests.idempotency.holders import hold_key

SLOW = 3.0  # seconds the first request's Stripe call takes (the old lock timeout was 2 minutes)


async def test_a_slow_live_holder_is_never_pre_empted(
    committed_engine: AsyncEngine,
    committed_client: httpx.AsyncClient,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    async with AsyncSession(committed_engine, expire_on_commit=False) as s:
        listing = await make_listing(s, await make_vendor(s), stock=5)
    buyer = await make_committed_user("buyer")
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        started.set()
        await release.wait()
        return create_intent_handler(request)

    route = mock_create_intent(stripe_api, side_effect=slow)
    body = {"items": [{"listing_id": str(listing.id), "quantity": 1}]}
    headers = {**buyer.headers, "Idempotency-Key": f"slow-{uuid.uuid4()}"}
    first = asyncio.create_task(
        committed_client.post("/v1/buyer/orders", json=body, headers=headers)
    )
    await asyncio.wait_for(started.wait(), 10)

    retries: list[httpx.Response] = []
    loop = asyncio.get_running_loop()
    until = loop.time() + SLOW
    while loop.time() < until:  # the client retries all along while the first one runs
        retries.append(await committed_client.post("/v1/buyer/orders", json=body, headers=headers))
        await asyncio.sleep(0.25)
    release.set()
    done = await first

    assert done.status_code == 201, done.text
    assert len(retries) >= 5
    assert {r.status_code for r in retries} == {409}
    assert {r.json()["code"] for r in retries} == {"idempotency_key_in_use"}
    assert {r.headers["Retry-After"] for r in retries} == {"1"}
    assert route.call_count == 1
    async with AsyncSession(committed_engine) as s:
        assert await s.scalar(select(func.count()).select_from(Payment)) == 1


async def test_a_dead_holders_key_is_taken_over_at_once(
    committed_engine: AsyncEngine,
    committed_client: httpx.AsyncClient,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    async with AsyncSession(committed_engine, expire_on_commit=False) as s:
        listing = await make_listing(s, await make_vendor(s), stock=5)
    buyer = await make_committed_user("buyer")
    route = mock_create_intent(stripe_api)
    body = {"items": [{"listing_id": str(listing.id), "quantity": 1}]}
    key = f"dead-{uuid.uuid4()}"
    headers = {**buyer.headers, "Idempotency-Key": key}

    async with hold_key(committed_engine, buyer.id, key):  # another process, alive
        busy = await committed_client.post("/v1/buyer/orders", json=body, headers=headers)
    # ... and now dead: its connection is gone, and PostgreSQL ended its backend.
    taken_over = await committed_client.post("/v1/buyer/orders", json=body, headers=headers)

    assert busy.status_code == 409
    assert taken_over.status_code == 201, taken_over.text
    assert route.call_count == 1
