"""Helpers of the webhook tests: deliver signed events, and test-only handlers that make a real,
countable change (they append to a list and edit a user's `full_name`)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from marketplace_api.accounts.models import User
from marketplace_api.webhooks import dispatch
from marketplace_api.webhooks.dispatch import EventContext, RetryLater
from tests.fixtures.stripe import WEBHOOK_SECRET, event_body, sign

TOUCH_USER = "test.touch_user"  # appends "!" to a user's full_name
FLAKY = "test.flaky"  # fails `fail_times` times, then touches the user
NOT_YET = "test.not_yet"  # RetryLater until `ready` is set, then touches the user


async def deliver(
    client: httpx.AsyncClient,
    evt: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> httpx.Response:
    body = event_body(evt)
    return await client.post(
        "/webhooks/stripe",
        content=body,
        headers={
            "Stripe-Signature": sign(body, secret, timestamp=timestamp),
            "Content-Type": "application/json",
        },
    )


class Recorder:
    """What the test handlers did: one entry per applied event."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.calls = 0
        self.fail_times = 0
        self.ready = False
        self.delay = 0.0


async def _touch(session: AsyncSession, ctx: EventContext, recorder: Recorder) -> None:
    user_id = uuid.UUID(ctx.object["metadata"]["user_id"])
    # Like a real handler, lock the row it changes: other events may change it concurrently.
    query = (
        select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    user = (await session.execute(query)).scalar_one_or_none()
    if user is None:
        raise RetryLater(f"user {user_id} not found")
    if recorder.delay:
        await asyncio.sleep(recorder.delay)  # widen the window for a concurrent duplicate
    user.full_name = (user.full_name or "") + "!"
    await session.flush()
    recorder.applied.append(ctx.id)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()

    async def touch_user(session: AsyncSession, ctx: EventContext) -> None:
        recorder.calls += 1
        await _touch(session, ctx, recorder)

    async def flaky(session: AsyncSession, ctx: EventContext) -> None:
        recorder.calls += 1
        # The change made before failing must be rolled back with the failure.
        user_id = uuid.UUID(ctx.object["metadata"]["user_id"])
        user = await session.get(User, user_id)
        assert user is not None
        user.full_name = "half-applied"
        await session.flush()
        if recorder.calls <= recorder.fail_times:
            raise RuntimeError(f"boom {recorder.calls}")
        user.full_name = "Test buyer"
        await session.flush()
        await _touch(session, ctx, recorder)

    async def not_yet(session: AsyncSession, ctx: EventContext) -> None:
        recorder.calls += 1
        if not recorder.ready:
            raise RetryLater("the target row is not committed yet")
        await _touch(session, ctx, recorder)

    monkeypatch.setitem(dispatch.HANDLERS, TOUCH_USER, touch_user)
    monkeypatch.setitem(dispatch.HANDLERS, FLAKY, flaky)
    monkeypatch.setitem(dispatch.HANDLERS, NOT_YET, not_yet)
    return recorder


def user_event(type_: str, user_id: uuid.UUID, **kwargs: Any) -> dict[str, Any]:
    from tests.fixtures.stripe import event

    return event(
        type_, {"id": "obj_1", "object": "test", "metadata": {"user_id": str(user_id)}}, **kwargs
    )


@pytest.fixture
async def test_sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions joining the test's rolled-back transaction (for `process_due_events`)."""
    return async_sessionmaker(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        autoflush=False,
    )
