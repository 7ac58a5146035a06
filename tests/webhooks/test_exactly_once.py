"""Exactly once on real separate connections: concurrent duplicates, two app instances, several
retry workers. The handler's effect (a list entry and a `full_name` edit) happens once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from marketplace_api.accounts.models import User
from marketplace_api.config import Settings
from marketplace_api.db import create_sessionmaker
from marketplace_api.main import create_app
from marketplace_api.webhooks.envelope import parse_event
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.webhooks.pipeline import process_due_events, store_event
from tests.conftest import MakeUser, build_state
from tests.webhooks.conftest import TOUCH_USER, Recorder, deliver, user_event


async def _state(engine: AsyncEngine, event_id: str, user_id: object) -> tuple[object, ...]:
    async with AsyncSession(engine) as s:
        row = await s.get(StripeEvent, event_id)
        assert row is not None
        name = (await s.execute(select(User.full_name).where(User.id == user_id))).scalar_one()
        return row.status, row.attempts, name


def _check_receipts(responses: list[httpx.Response]) -> None:
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert sum(not b["duplicate"] for b in bodies) == 1
    # Every answer is "processed", or "pending" while another delivery held the lock.
    assert {b["status"] for b in bodies} <= {"processed", "pending"}


async def test_twenty_concurrent_deliveries_apply_once(
    committed_client: httpx.AsyncClient,
    committed_engine: AsyncEngine,
    make_committed_user: MakeUser,
    recorder: Recorder,
) -> None:
    user = await make_committed_user("buyer")
    recorder.delay = 0.05
    evt = user_event(TOUCH_USER, user.id)
    responses = await asyncio.gather(*(deliver(committed_client, evt) for _ in range(20)))
    _check_receipts(list(responses))
    assert recorder.applied == [evt["id"]]
    assert await _state(committed_engine, evt["id"], user.id) == (
        EventStatus.processed,
        1,
        "Test buyer!",
    )


@pytest.fixture
async def two_apps(
    settings: Settings, committed_engine: AsyncEngine
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two replicas: separately created apps, each with its own engine, one database."""
    engines = [
        create_async_engine(
            committed_engine.url,
            poolclass=NullPool,
            connect_args={"server_settings": {"timezone": "UTC"}},
        )
        for _ in range(2)
    ]
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(state=build_state(settings, e))),
            base_url=f"http://replica{i}",
        )
        for i, e in enumerate(engines)
    ]
    try:
        yield clients[0], clients[1]
    finally:
        for c in clients:
            await c.aclose()
        for e in engines:
            await e.dispose()


async def test_two_app_instances_receiving_the_same_event_apply_it_once(
    two_apps: tuple[httpx.AsyncClient, httpx.AsyncClient],
    committed_engine: AsyncEngine,
    make_committed_user: MakeUser,
    recorder: Recorder,
) -> None:
    user = await make_committed_user("buyer")
    recorder.delay = 0.05
    evt = user_event(TOUCH_USER, user.id)
    first, second = two_apps
    responses = await asyncio.gather(
        *(deliver(app, evt) for _ in range(10) for app in (first, second))
    )
    _check_receipts(list(responses))
    assert recorder.applied == [evt["id"]]
    assert await _state(committed_engine, evt["id"], user.id) == (
        EventStatus.processed,
        1,
        "Test buyer!",
    )


async def test_concurrent_retry_workers_apply_each_due_event_once(
    committed_engine: AsyncEngine, make_committed_user: MakeUser, recorder: Recorder
) -> None:
    users = [await make_committed_user("buyer") for _ in range(4)]
    events = [user_event(TOUCH_USER, users[i % 4].id) for i in range(12)]
    async with AsyncSession(committed_engine) as s:
        for evt in events:
            await store_event(s, parse_event(evt))
    recorder.delay = 0.01
    workers = [create_sessionmaker(committed_engine) for _ in range(3)]
    counts = await asyncio.gather(*(process_due_events(w) for w in workers))
    assert sum(counts) == 12
    assert sorted(recorder.applied) == sorted(e["id"] for e in events)
    for user in users:
        _, _, name = await _state(committed_engine, events[0]["id"], user.id)
        assert name == "Test buyer!!!"
