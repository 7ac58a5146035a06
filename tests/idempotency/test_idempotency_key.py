"""Idempotency-Key on POST /v1/buyer/orders: replay, mismatch, concurrency, resume after 503."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import respx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.idempotency.models import IdempotencyKey
from marketplace_api.payments.models import Payment
from tests.conftest import AuthUser, MakeUser
from tests.fixtures.catalog import make_listing, make_vendor
from tests.fixtures.stripe import form
from tests.fixtures.stripe_mocks import (
    create_intent_handler,
    mock_create_intent,
)


async def _cart(session: AsyncSession, stock: int = 5) -> dict[str, object]:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, stock=stock)
    return {"items": [{"listing_id": str(listing.id), "quantity": 1}]}


async def test_same_key_and_body_replays_the_first_answer(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    body = await _cart(session)
    route = mock_create_intent(stripe_api)
    headers = {**buyer.headers, "Idempotency-Key": "cart-1"}

    first = await client.post("/v1/buyer/orders", json=body, headers=headers)
    second = await client.post("/v1/buyer/orders", json=body, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert route.call_count == 1
    assert await session.scalar(select(func.count()).select_from(Payment)) == 1


async def test_same_key_with_another_body_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    body = await _cart(session)
    mock_create_intent(stripe_api)
    headers = {**buyer.headers, "Idempotency-Key": "cart-2"}
    assert (await client.post("/v1/buyer/orders", json=body, headers=headers)).status_code == 201

    other = {"items": [{**body["items"][0], "quantity": 2}]}  # type: ignore[index]
    response = await client.post("/v1/buyer/orders", json=other, headers=headers)

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert await session.scalar(select(func.count()).select_from(Payment)) == 1


async def test_keys_are_scoped_per_user(
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    body = await _cart(session)
    mock_create_intent(stripe_api)
    alice, bob = await make_user("buyer"), await make_user("buyer")
    a = await client.post(
        "/v1/buyer/orders", json=body, headers={**alice.headers, "Idempotency-Key": "same"}
    )
    b = await client.post(
        "/v1/buyer/orders", json=body, headers={**bob.headers, "Idempotency-Key": "same"}
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["payment_id"] != b.json()["payment_id"]
    record = (
        await session.execute(select(IdempotencyKey).where(IdempotencyKey.user_id == alice.id))
    ).scalar_one()
    assert record.expires_at - record.created_at >= __import__("datetime").timedelta(hours=24)


async def test_a_final_error_is_replayed_too(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    body = await _cart(session, stock=0)
    headers = {**buyer.headers, "Idempotency-Key": "cart-oos"}
    first = await client.post("/v1/buyer/orders", json=body, headers=headers)
    second = await client.post("/v1/buyer/orders", json=body, headers=headers)
    assert first.status_code == second.status_code == 409
    assert second.json() == first.json()
    assert second.json()["code"] == "out_of_stock"
    assert second.headers["content-type"] == "application/problem+json"


async def test_stripe_timeout_then_retry_creates_one_payment_intent_with_the_same_key(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, stripe_api: respx.MockRouter
) -> None:
    body = await _cart(session)
    attempts: list[httpx.Request] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.ReadTimeout("Stripe took too long", request=request)
        return create_intent_handler(request)

    route = mock_create_intent(stripe_api, side_effect=flaky)
    headers = {**buyer.headers, "Idempotency-Key": "cart-timeout"}

    first = await client.post("/v1/buyer/orders", json=body, headers=headers)
    assert first.status_code == 503
    assert first.json()["code"] == "stripe_unavailable"
    payment = (await session.execute(select(Payment))).scalar_one()
    payment_id = payment.id

    retry = await client.post("/v1/buyer/orders", json=body, headers=headers)

    assert retry.status_code == 201, retry.text
    assert retry.json()["payment_id"] == str(payment_id)
    assert route.call_count == 2
    keys = {r.headers["Idempotency-Key"] for r in attempts}
    assert keys == {f"payment:{payment_id}:create"}
    assert form(attempts[0]) == form(attempts[1])  # identical parameters, as Stripe requires
    assert await session.scalar(select(func.count()).select_from(Payment)) == 1
    await session.refresh(payment)
    assert payment.stripe_payment_intent_id == retry.json()["client_secret"].split("_secret_")[0]


async def test_concurrent_requests_with_one_key_run_once(
    committed_engine: AsyncEngine,
    committed_client: httpx.AsyncClient,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    async with AsyncSession(committed_engine, expire_on_commit=False) as s:
        vendor = await make_vendor(s)
        listing = await make_listing(s, vendor, stock=10)
    buyer = await make_committed_user("buyer")
    release, started = asyncio.Event(), asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        started.set()
        await release.wait()
        return create_intent_handler(request)

    route = mock_create_intent(stripe_api, side_effect=slow)
    body = {"items": [{"listing_id": str(listing.id), "quantity": 1}]}
    headers = {**buyer.headers, "Idempotency-Key": f"k-{uuid.uuid4()}"}

    first = asyncio.create_task(
        committed_client.post("/v1/buyer/orders", json=body, headers=headers)
    )
    await asyncio.wait_for(started.wait(), 10)  # the first request holds the key meanwhile
    others = await asyncio.gather(
        *[committed_client.post("/v1/buyer/orders", json=body, headers=headers) for _ in range(5)]
    )
    release.set()
    done = await first

    assert done.status_code == 201
    assert [r.status_code for r in others] == [409] * 5
    assert {r.json()["code"] for r in others} == {"idempotency_key_in_use"}
    assert route.call_count == 1
    async with AsyncSession(committed_engine) as s:
        assert await s.scalar(select(func.count()).select_from(Payment)) == 1
    replay = await committed_client.post("/v1/buyer/orders", json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.json() == done.json()


async def test_an_attempt_that_lost_its_key_to_a_retry_binds_and_stores_nothing(
    session: AsyncSession, buyer: AuthUser
) -> None:
    """If an attempt's lock connection dies while it still runs, a retry takes the key over. The
    first attempt must then be unable to bind a resource (its transaction, with the resource it
    was creating, rolls back) or to store an answer: the retry's resource is the only one."""
    from datetime import UTC, datetime, timedelta

    import pytest

    from marketplace_api.idempotency.exceptions import IdempotencyKeyLost
    from marketplace_api.idempotency.service import IdempotencyContext, acquire, complete

    started = datetime.now(UTC)
    taken: list[IdempotencyContext] = []
    for now in (started, started + timedelta(seconds=1)):  # the attempt, then the retry
        context = await acquire(
            session,
            user_id=buyer.user.id,
            key="lost-key",
            method="POST",
            path="/v1/x",
            request_hash="h",
            now=now,
        )
        assert isinstance(context, IdempotencyContext)
        taken.append(context)
    first, retry = taken

    with pytest.raises(IdempotencyKeyLost):
        await first.bind(session, uuid.uuid4())
    await session.rollback()
    kept = uuid.uuid4()
    await retry.bind(session, kept)
    await session.commit()
    await complete(session, first, 201, {"from": "the first attempt"})
    record = (
        await session.execute(
            select(IdempotencyKey)
            .where(IdempotencyKey.key == "lost-key")
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    assert record.resource_ids == [kept]
    assert record.response_status is None  # the first attempt's answer was not stored

    await complete(session, retry, 201, {"from": "the retry"})
    await session.refresh(record)
    assert (record.response_status, record.response_body) == (201, {"from": "the retry"})
