"""Store once, apply once; failures and early events are retried with backoff, never lost."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.accounts.models import User
from marketplace_api.webhooks import dispatch, pipeline
from marketplace_api.webhooks.dispatch import EventContext
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.webhooks.pipeline import MAX_ATTEMPTS, backoff, process_due_events
from tests.conftest import AuthUser, MakeUser
from tests.webhooks.conftest import FLAKY, NOT_YET, TOUCH_USER, Recorder, deliver, user_event


async def _full_name(session: AsyncSession, user: AuthUser) -> str | None:
    user_id = inspect(user.user).identity[0]  # no lazy load, even if a rollback expired it
    return (await session.execute(select(User.full_name).where(User.id == user_id))).scalar_one()


async def _event(session: AsyncSession, event_id: str) -> StripeEvent:
    row = await session.get(StripeEvent, event_id, populate_existing=True)
    assert row is not None
    return row


def test_backoff_doubles_from_five_seconds_and_is_capped_at_an_hour() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 6)] == [5, 10, 20, 40, 80]
    assert backoff(11) == timedelta(hours=1)
    assert backoff(10_000) == timedelta(hours=1)


async def test_event_is_applied_once_however_often_it_is_delivered(
    client: httpx.AsyncClient, session: AsyncSession, buyer: AuthUser, recorder: Recorder
) -> None:
    evt = user_event(TOUCH_USER, buyer.id)
    answers = [(await deliver(client, evt)).json() for _ in range(20)]
    assert answers[0] == {
        "received": True,
        "id": evt["id"],
        "status": "processed",
        "duplicate": False,
    }
    assert all(a["status"] == "processed" and a["duplicate"] for a in answers[1:])
    assert recorder.applied == [evt["id"]]
    assert await _full_name(session, buyer) == "Test buyer!"
    row = await _event(session, evt["id"])
    assert (row.status, row.attempts, row.last_error) == (EventStatus.processed, 1, None)


async def test_failing_handler_is_rolled_back_and_retried_with_backoff(
    client: httpx.AsyncClient,
    session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
    buyer: AuthUser,
    recorder: Recorder,
) -> None:
    recorder.fail_times = 2
    evt = user_event(FLAKY, buyer.id)
    before = datetime.now(UTC)
    response = await deliver(client, evt)
    assert response.status_code == 200
    assert response.json()["status"] == "pending"

    row = await _event(session, evt["id"])
    assert row.status is EventStatus.pending
    assert row.attempts == 1
    assert row.last_error == "RuntimeError: boom 1"
    assert row.next_attempt_at is not None
    first_due = row.next_attempt_at
    assert before + timedelta(seconds=5) <= first_due <= datetime.now(UTC) + timedelta(seconds=5)
    # The handler's half-done change went with the failure.
    assert await _full_name(session, buyer) == "Test buyer"

    # Not due yet: nothing happens.
    assert await process_due_events(test_sessionmaker, now=first_due - timedelta(seconds=1)) == 0
    assert recorder.calls == 1

    # Second attempt fails too: the delay doubles.
    assert await process_due_events(test_sessionmaker, now=first_due) == 1
    row = await _event(session, evt["id"])
    assert (row.status, row.attempts, row.last_error) == (
        EventStatus.pending,
        2,
        "RuntimeError: boom 2",
    )
    assert row.next_attempt_at == first_due + timedelta(seconds=10)

    # Third attempt succeeds.
    assert await process_due_events(test_sessionmaker, now=row.next_attempt_at) == 1
    row = await _event(session, evt["id"])
    assert (row.status, row.attempts, row.last_error) == (EventStatus.processed, 3, None)
    assert row.next_attempt_at is None
    assert recorder.applied == [evt["id"]]
    assert await _full_name(session, buyer) == "Test buyer!"

    # Processed events are never picked up again.
    assert await process_due_events(test_sessionmaker, now=first_due + timedelta(days=1)) == 0
    assert recorder.calls == 3


async def test_retry_later_keeps_the_event_pending_until_the_retry_job_applies_it(
    client: httpx.AsyncClient,
    session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
    buyer: AuthUser,
    recorder: Recorder,
) -> None:
    evt = user_event(NOT_YET, buyer.id)
    assert (await deliver(client, evt)).json()["status"] == "pending"
    row = await _event(session, evt["id"])
    assert row.status is EventStatus.pending
    assert row.last_error == "retry later: the target row is not committed yet"
    assert row.next_attempt_at is not None

    # A redelivery by Stripe before the event is due does not apply it early.
    again = await deliver(client, evt)
    assert again.json() == {
        "received": True,
        "id": evt["id"],
        "status": "pending",
        "duplicate": True,
    }
    assert recorder.calls == 1

    recorder.ready = True
    assert await process_due_events(test_sessionmaker, now=row.next_attempt_at) == 1
    assert (await _event(session, evt["id"])).status is EventStatus.processed
    assert recorder.applied == [evt["id"]]


async def test_event_arriving_before_its_row_is_applied_once_the_row_exists(
    client: httpx.AsyncClient,
    session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
    make_user: MakeUser,
    recorder: Recorder,
) -> None:
    import uuid

    from marketplace_api.accounts.models import Role

    future_user_id = uuid.uuid4()
    evt = user_event(TOUCH_USER, future_user_id)
    assert (await deliver(client, evt)).json()["status"] == "pending"
    row = await _event(session, evt["id"])
    assert row.last_error == f"retry later: user {future_user_id} not found"
    due = row.next_attempt_at
    assert due is not None

    user = await make_user(Role.buyer)
    await session.execute(
        User.__table__.update().where(User.id == user.id).values(id=future_user_id)
    )
    await session.commit()

    assert await process_due_events(test_sessionmaker, now=due) == 1
    assert (await _event(session, evt["id"])).status is EventStatus.processed
    assert recorder.applied == [evt["id"]]


async def test_event_fails_for_good_after_max_attempts(
    client: httpx.AsyncClient,
    session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
    buyer: AuthUser,
    recorder: Recorder,
) -> None:
    recorder.fail_times = 1000
    evt = user_event(FLAKY, buyer.id)
    await deliver(client, evt)
    moment = datetime.now(UTC)
    for _ in range(MAX_ATTEMPTS + 3):
        moment += timedelta(hours=2)
        await process_due_events(test_sessionmaker, now=moment)
    row = await _event(session, evt["id"])
    assert row.status is EventStatus.failed
    assert row.attempts == MAX_ATTEMPTS
    assert row.next_attempt_at is None
    assert row.last_error == f"RuntimeError: boom {MAX_ATTEMPTS}"
    assert recorder.calls == MAX_ATTEMPTS
    assert recorder.applied == []


async def test_retry_job_applies_due_events_oldest_first_and_respects_the_limit(
    session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
    buyer: AuthUser,
    recorder: Recorder,
) -> None:
    from marketplace_api.webhooks.envelope import parse_event
    from marketplace_api.webhooks.pipeline import store_event

    base = 1_793_000_000
    events = [user_event(TOUCH_USER, buyer.id, created=base + i) for i in (3, 1, 2)]
    for evt in events:
        await store_event(session, parse_event(evt))
    assert await process_due_events(test_sessionmaker, limit=2) == 2
    assert recorder.applied == [events[1]["id"], events[2]["id"]]
    assert await process_due_events(test_sessionmaker) == 1
    assert recorder.applied[-1] == events[0]["id"]
    assert await _full_name(session, buyer) == "Test buyer!!!"


async def test_handler_swallowing_a_database_error_does_not_lose_the_event(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A handler that catches a database error leaves the transaction aborted: PostgreSQL would
    answer its COMMIT with a silent ROLLBACK. The event is still stored, pending, with the error."""

    async def swallowing(session: AsyncSession, ctx: EventContext) -> None:
        with contextlib.suppress(DBAPIError):
            await session.execute(text("SELECT 1 / 0"))

    monkeypatch.setitem(dispatch.HANDLERS, "test.swallowing", swallowing)
    evt = user_event("test.swallowing", buyer.id)
    response = await deliver(client, evt)
    assert response.json()["status"] == "pending"
    row = await _event(session, evt["id"])
    assert (row.status, row.attempts, row.next_attempt_at is not None) == (
        EventStatus.pending,
        1,
        True,
    )
    assert "current transaction is aborted" in (row.last_error or "")


async def test_failed_commit_stores_nothing_and_asks_stripe_to_deliver_again(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commit = session.commit
    calls = 0

    async def commit_fails_after_applying() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first one only starts receive() from a fresh transaction
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection lost"))
        await commit()

    evt = user_event(TOUCH_USER, buyer.id)
    with monkeypatch.context() as patch:
        patch.setattr(session, "commit", commit_fails_after_applying)
        response = await deliver(client, evt)
    assert response.status_code == 503
    assert response.json()["code"] == "event_store_unavailable"
    assert await session.get(StripeEvent, evt["id"]) is None  # rolled back with its effects
    assert await _full_name(session, buyer) == "Test buyer"

    # Stripe delivers it again: applied once.
    assert (await deliver(client, evt)).json()["status"] == "processed"
    assert await _full_name(session, buyer) == "Test buyer!"


async def test_duplicate_that_cannot_be_applied_now_is_still_acknowledged(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder.fail_times = 1
    evt = user_event(FLAKY, buyer.id)
    assert (await deliver(client, evt)).json()["status"] == "pending"

    async def database_gone(*args: object, **kwargs: object) -> EventStatus:
        raise OperationalError("SELECT", {}, ConnectionResetError("connection lost"))

    monkeypatch.setattr(pipeline, "apply_event", database_gone)
    response = await deliver(client, evt)  # stored already: not a reason to redeliver
    assert response.status_code == 200
    assert response.json() == {
        "received": True,
        "id": evt["id"],
        "status": "pending",
        "duplicate": True,
    }
    assert (await _event(session, evt["id"])).status is EventStatus.pending
