"""Retention: the tables that grow with every event lose their old rows, never the ones still
needed.

- `stripe_events`: only `processed` and `ignored` events whose `processed_at` is older than
  `RETENTION_STRIPE_EVENTS_DAYS`. Pending events (not applied yet, or waiting for a retry) and
  failed ones (an operator has to look) stay whatever their age.
- `notifications`: only `sent` and `skipped` ones older than `RETENTION_NOTIFICATIONS_DAYS`; a
  queued notification (its send job has not run) and a failed one stay.
- `order_events`: rows older than `RETENTION_ORDER_EVENTS_DAYS` (the SSE replay window), except
  the newest row of each order, so a client reconnecting with an older `Last-Event-ID` is still
  replayed the order's current state.

Each table is deleted in batches of `RETENTION_BATCH_SIZE` rows, one short transaction per batch
(no long lock, no huge WAL burst), at most `max_batches` per table and run: the next run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from marketplace_api.config import Settings
from marketplace_api.live.models import OrderEvent
from marketplace_api.notifications.models import Notification, NotificationStatus
from marketplace_api.webhooks.models import EventStatus, StripeEvent

DONE_EVENT_STATUSES = (EventStatus.processed, EventStatus.ignored)
DONE_NOTIFICATION_STATUSES = (NotificationStatus.sent, NotificationStatus.skipped)


@dataclass(frozen=True, slots=True)
class Pruned:
    stripe_events: int
    notifications: int
    order_events: int


def _old_stripe_events(cutoff: datetime) -> Any:
    return select(StripeEvent.id).where(
        StripeEvent.status.in_(DONE_EVENT_STATUSES), StripeEvent.processed_at < cutoff
    )


def _old_notifications(cutoff: datetime) -> Any:
    return select(Notification.id).where(
        Notification.status.in_(DONE_NOTIFICATION_STATUSES), Notification.created_at < cutoff
    )


def _old_order_events(cutoff: datetime) -> Any:
    newer = aliased(OrderEvent)
    return select(OrderEvent.id).where(
        OrderEvent.created_at < cutoff,
        exists().where(newer.order_id == OrderEvent.order_id, newer.id > OrderEvent.id),
    )


async def _prune(
    sessionmaker: async_sessionmaker[AsyncSession],
    model: Any,
    candidates: Any,
    *,
    batch_size: int,
    max_batches: int,
) -> int:
    deleted = 0
    for _ in range(max_batches):
        async with sessionmaker() as session:
            ids = candidates.limit(batch_size).scalar_subquery()
            result = await session.execute(
                delete(model).where(model.id.in_(ids)).returning(model.id)
            )
            count = len(result.all())
            await session.commit()
        deleted += count
        if count < batch_size:
            break
    return deleted


async def prune_history(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime,
    max_batches: int = 100,
) -> Pruned:
    """Delete what the retention settings say is old enough (see the module docstring)."""
    batch = {"batch_size": settings.retention_batch_size, "max_batches": max_batches}
    days = timedelta(days=1)
    return Pruned(
        stripe_events=await _prune(
            sessionmaker,
            StripeEvent,
            _old_stripe_events(now - settings.retention_stripe_events_days * days),
            **batch,
        ),
        notifications=await _prune(
            sessionmaker,
            Notification,
            _old_notifications(now - settings.retention_notifications_days * days),
            **batch,
        ),
        order_events=await _prune(
            sessionmaker,
            OrderEvent,
            _old_order_events(now - settings.retention_order_events_days * days),
            **batch,
        ),
    )
