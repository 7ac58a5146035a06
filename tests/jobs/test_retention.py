"""Retention (`prune_history`): old Stripe events, notifications and order events are deleted in
bounded batches; what is still needed — unapplied or failed events, unsent notifications, each
order's newest event, anything younger than its age — stays."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from marketplace_api.config import Settings
from marketplace_api.live.models import OrderEvent
from marketplace_api.notifications.models import Notification, NotificationStatus
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.worker.retention import prune_history
from tests.fixtures.money import make_paid

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=400)
RECENT = NOW - timedelta(days=2)


@pytest.fixture
def sessions(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


def _event(status: EventStatus, at: datetime) -> StripeEvent:
    return StripeEvent(
        id=f"evt_{uuid.uuid4().hex}",
        type="payment_intent.succeeded",
        livemode=False,
        created=at,
        payload={"id": "x"},
        status=status,
        processed_at=at if status in (EventStatus.processed, EventStatus.ignored) else None,
    )


def _notification(status: NotificationStatus, at: datetime) -> Notification:
    return Notification(
        dedupe_key=uuid.uuid4().hex,
        kind="order_paid",
        recipient="buyer@example.com",
        context={},
        status=status,
        created_at=at,
    )


async def _ids(session: AsyncSession, column: object) -> set[object]:
    return set((await session.execute(select(column))).scalars())  # type: ignore[call-overload]


async def test_only_old_rows_no_longer_needed_are_deleted(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    events = {
        "processed_old": _event(EventStatus.processed, OLD),
        "ignored_old": _event(EventStatus.ignored, OLD),
        "processed_recent": _event(EventStatus.processed, RECENT),
        "pending_old": _event(EventStatus.pending, OLD),  # not applied yet
        "failed_old": _event(EventStatus.failed, OLD),  # an operator has to look
    }
    notifications = {
        "sent_old": _notification(NotificationStatus.sent, OLD),
        "skipped_old": _notification(NotificationStatus.skipped, OLD),
        "sent_recent": _notification(NotificationStatus.sent, RECENT),
        "queued_old": _notification(NotificationStatus.queued, OLD),  # not sent yet
        "failed_old": _notification(NotificationStatus.failed, OLD),
    }
    session.add_all([*events.values(), *notifications.values()])
    quiet = await make_paid(session)  # its history is all old
    busy = await make_paid(session)  # old history, one recent change
    for order_id, at in ((quiet.order.id, OLD), (busy.order.id, OLD)):
        session.add_all([OrderEvent(**_snapshot(order_id, busy.payment.id)) for _ in range(3)])
        await session.flush()
        await session.execute(
            update(OrderEvent).where(OrderEvent.order_id == order_id).values(created_at=at)
        )
    session.add(OrderEvent(**_snapshot(busy.order.id, busy.payment.id), created_at=RECENT))
    await session.commit()
    quiet_newest = max(await _order_event_ids(session, quiet.order.id))
    busy_newest = max(await _order_event_ids(session, busy.order.id))

    pruned = await prune_history(sessions, settings, now=NOW)

    kept_events = await _ids(session, StripeEvent.id)
    assert {k for k, e in events.items() if e.id in kept_events} == {
        "processed_recent",
        "pending_old",
        "failed_old",
    }
    kept_notifications = await _ids(session, Notification.id)
    assert {k for k, n in notifications.items() if n.id in kept_notifications} == {
        "sent_recent",
        "queued_old",
        "failed_old",
    }
    assert await _order_event_ids(session, quiet.order.id) == {quiet_newest}
    assert await _order_event_ids(session, busy.order.id) == {busy_newest}
    assert pruned.stripe_events == 2
    assert pruned.notifications == 2
    assert pruned.order_events == 2 + 3  # all but the newest of each order's old ones


async def test_deletes_in_bounded_batches_and_goes_on_next_run(
    session: AsyncSession, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    session.add_all([_event(EventStatus.processed, OLD) for _ in range(5)])
    await session.commit()
    small = settings.model_copy(update={"retention_batch_size": 2})

    first = await prune_history(sessions, small, now=NOW, max_batches=2)
    second = await prune_history(sessions, small, now=NOW, max_batches=2)

    assert (first.stripe_events, second.stripe_events) == (4, 1)
    assert not await _ids(session, StripeEvent.id)


@pytest.mark.parametrize(
    ("field", "floor"),
    [
        ("retention_stripe_events_days", 7),
        ("retention_notifications_days", 7),
        ("retention_order_events_days", 1),
    ],
)
def test_retention_ages_have_a_floor(field: str, floor: int) -> None:
    from pydantic import ValidationError

    Settings.model_validate({field: floor})
    with pytest.raises(ValidationError):
        Settings.model_validate({field: floor - 1})


def _snapshot(order_id: uuid.UUID, payment_id: uuid.UUID) -> dict[str, object]:
    return {
        "order_id": order_id,
        "payment_id": payment_id,
        "kind": "order",
        "status": "paid",
        "fulfilment_status": "unfulfilled",
        "payment_status": "succeeded",
    }


async def _order_event_ids(session: AsyncSession, order_id: uuid.UUID) -> set[int]:
    return set(
        (await session.execute(select(OrderEvent.id).where(OrderEvent.order_id == order_id)))
        .scalars()
        .all()
    )
