"""The webhook pipeline: store a verified event once, then apply it exactly once.

1. `receive` (a delivery): `INSERT … ON CONFLICT (id) DO NOTHING RETURNING id`, the handler, the
   move to `processed`, one COMMIT: the event row and the handler's effects commit together or
   not at all (an event with no registered handler is inserted `ignored` and committed). A
   concurrent duplicate delivery (same event id, on any replica) waits on the unique index until
   that transaction ends, then inserts nothing. When the handler fails, everything is rolled back
   and the event is stored `pending` with its error, to be retried (3).
2. `apply_event` / `process_due_events` (a duplicate delivery, the retry job, an admin's retry):
   in a new transaction, lock the event row with `SELECT … FOR UPDATE SKIP LOCKED` while it is
   `pending` and due, run the handler inside a savepoint, and move the row to `processed` (or
   `ignored`) in the same transaction. Whoever holds the lock applies it; everybody else skips
   it, and once it is committed as processed nobody selects it again: the handler's effect
   happens once.
3. A handler that raises `RetryLater` (its row is not committed yet) or fails: its changes are
   rolled back, the event stays `pending` with `attempts + 1`, `last_error` and
   `next_attempt_at = now + 5 s · 2^(attempts-1)` (capped at 1 h); after `MAX_ATTEMPTS` it becomes
   `failed` (an admin can retry it). The retry job (`process_due_events`) picks up due events.
4. A handler that raises `binding.Mismatch` (the event names one of our rows but another object,
   amount, currency or account) or `StripeObjectInvalid` (its object's fields do not have
   Stripe's types): its changes are rolled back and the event is stored `mismatched` with the
   disagreement, the admins are alerted, and the delivery is answered 200 (retrying cannot make
   it agree).

Status changes of a stored event go through `transition` only.
"""

from __future__ import annotations

import contextlib
import logging
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.trace import Span
from sqlalchemy import Select, bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api import tracing
from marketplace_api.integrations.stripe.objects import (
    EventEnvelope,
    StripeObjectInvalid,
    parse_object,
)
from marketplace_api.metrics import WEBHOOK_EVENTS
from marketplace_api.tables import columns, table_of
from marketplace_api.webhooks.binding import Mismatch
from marketplace_api.webhooks.dispatch import EventContext, RetryLater, load_handlers
from marketplace_api.webhooks.envelope import NewEvent
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.webhooks.notices import (
    notify_webhook_event_failed,
    notify_webhook_event_mismatched,
)

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CAP = timedelta(hours=1)
MAX_ERROR_LENGTH = 2000
# A handler's refusals that no retry can change: the event is stored `mismatched`.
SET_ASIDE = (Mismatch, StripeObjectInvalid)

# The allowed moves of an event's status. `processed` is final; `ignored` and `failed` can be put
# back to `pending` by an admin (e.g. once a handler for an ignored type is deployed).
TRANSITIONS: dict[EventStatus, frozenset[EventStatus]] = {
    EventStatus.pending: frozenset(
        {
            EventStatus.pending,
            EventStatus.processed,
            EventStatus.ignored,
            EventStatus.failed,
            EventStatus.mismatched,
        }
    ),
    EventStatus.failed: frozenset({EventStatus.pending}),
    EventStatus.ignored: frozenset({EventStatus.pending}),
    # An admin may apply it again once our row is corrected; it is verified again then.
    EventStatus.mismatched: frozenset({EventStatus.pending}),
    EventStatus.processed: frozenset(),
}


# Built once (`tables`): the event's INSERT takes its columns as parameters, a transition's UPDATE
# its new status and values (they become the SET).
_EVENTS = table_of(StripeEvent)
_INSERT = (
    insert(_EVENTS).on_conflict_do_nothing(index_elements=[_EVENTS.c.id]).returning(_EVENTS.c.id)
)
_TRANSITION = {
    to: update(_EVENTS)
    .where(
        _EVENTS.c.id == bindparam("event_id_"),
        _EVENTS.c.status.in_([status for status, targets in TRANSITIONS.items() if to in targets]),
    )
    .returning(_EVENTS.c.status)
    for to in EventStatus
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def backoff(attempts: int) -> timedelta:
    """Delay before the next attempt after `attempts` failed ones: 5 s, 10 s, 20 s, … ≤ 1 h."""
    delay: timedelta = BACKOFF_BASE * 2 ** min(max(attempts - 1, 0), 20)
    return min(delay, BACKOFF_CAP)


def event_context(event: StripeEvent | NewEvent) -> EventContext:
    """What a handler gets: a new event's parsed envelope, or a stored event's, parsed again (it
    was valid when stored)."""
    data = (
        event.data
        if isinstance(event, NewEvent)
        else parse_object(EventEnvelope, event.payload).data
    )
    return EventContext(
        id=event.id,
        type=event.type,
        account=event.account,
        created=event.created,
        livemode=event.livemode,
        object=data.object,
        previous_attributes=data.previous_attributes,
    )


async def store_event(session: AsyncSession, event: NewEvent, **values: Any) -> bool:
    """Insert the event `pending` (with `values` for its other columns) unless it is already
    stored, and commit. True when newly inserted."""
    inserted = await _insert(session, event, EventStatus.pending, **values)
    await session.commit()
    return inserted


async def _insert(
    session: AsyncSession, event: NewEvent, status: EventStatus, **values: Any
) -> bool:
    row = {
        "id": event.id,
        "type": event.type,
        "account": event.account,
        "livemode": event.livemode,
        "api_version": event.api_version,
        "created": event.created,
        "payload": event.payload,
        "status": status,
        "attempts": 0,
        **values,
    }
    return (await session.execute(_INSERT, columns(_EVENTS, row))).scalar_one_or_none() is not None


def _event_span(
    event_id: str, event_type: str, account: str | None, delivery: str
) -> AbstractContextManager[Span]:
    """A span per event delivered or applied (traces on): its id, type and outcome."""
    attributes = {
        "stripe.event.id": event_id,
        "stripe.event.type": event_type,
        "stripe.event.delivery": delivery,  # received | retried
    }
    if account:
        attributes["stripe.account"] = account
    return tracing.span(f"stripe event {event_type}", attributes=attributes)


async def receive(
    session: AsyncSession, event: NewEvent, *, now: datetime
) -> tuple[EventStatus | None, bool]:
    """Store a delivered event and apply it in the same transaction (step 1 of the module
    docstring). Returns (the event's status afterwards, whether this delivery stored it)."""
    with _event_span(event.id, event.type, event.account, "received") as span:
        status, stored = await _receive(session, event, now=now)
        span.set_attribute("stripe.event.outcome", status.value if status else "missing")
        span.set_attribute("stripe.event.duplicate", not stored)
        return status, stored


async def _receive(
    session: AsyncSession, event: NewEvent, *, now: datetime
) -> tuple[EventStatus | None, bool]:
    """`receive` without its span.

    Database errors while inserting or committing propagate: then nothing is stored and Stripe
    must deliver the event again. Once it is stored the outcome is a status, never an error."""
    await session.commit()  # start from a fresh transaction
    handler = load_handlers().get(event.type)
    if handler is None:  # stored and acknowledged; an admin can apply it once a handler exists
        if not await _insert(session, event, EventStatus.ignored, attempts=1, processed_at=now):
            return await _duplicate(session, event, now)
        await session.commit()
        WEBHOOK_EVENTS.labels(event.type, EventStatus.ignored.value).inc()
        return EventStatus.ignored, True
    if not await _insert(session, event, EventStatus.pending):
        return await _duplicate(session, event, now)
    try:
        await handler(session, event_context(event))
        # Written after the handler, so it also fails (and nothing is committed as processed)
        # when the handler swallowed a database error that aborted the transaction.
        await transition(session, event.id, EventStatus.processed, processed_at=now, attempts=1)
    except SET_ASIDE as exc:
        await session.rollback()
        if not await _insert(
            session,
            event,
            EventStatus.mismatched,
            attempts=1,
            last_error=_mismatch(exc, event.id, event.type),
            processed_at=now,
        ):
            await session.rollback()
            return await _duplicate(session, event, now)
        await notify_webhook_event_mismatched(session, event.id)
        await session.commit()
        WEBHOOK_EVENTS.labels(event.type, EventStatus.mismatched.value).inc()
        return EventStatus.mismatched, True
    except Exception as exc:
        await session.rollback()
        error = _failure(exc, event.id, event.type)
        retry_at = now + backoff(1)
        if not await store_event(
            session, event, attempts=1, last_error=error, next_attempt_at=retry_at
        ):
            # A concurrent delivery stored it while this one rolled back: its outcome counts.
            return await _duplicate(session, event, now)
        WEBHOOK_EVENTS.labels(event.type, EventStatus.pending.value).inc()
        return EventStatus.pending, True
    await session.commit()
    WEBHOOK_EVENTS.labels(event.type, EventStatus.processed.value).inc()
    return EventStatus.processed, True


async def _duplicate(
    session: AsyncSession, event: NewEvent, now: datetime
) -> tuple[EventStatus | None, bool]:
    """An event stored before: applied now if it is still pending and due. It is stored, so a
    database error here is a status (pending, for the retry job), not a reason to redeliver."""
    try:
        return await apply_event(session, event.id, now=now), False
    except (SQLAlchemyError, OSError):
        logger.exception("could not apply stripe event", extra={"event_id": event.id})
        with contextlib.suppress(SQLAlchemyError, OSError):
            await session.rollback()
        return EventStatus.pending, False


def _mismatch(exc: Mismatch | StripeObjectInvalid, event_id: str, event_type: str) -> str:
    """Log a binding disagreement (ids and amounts only) or an object's invalid fields (their
    names), never the payload; its `last_error`."""
    if isinstance(exc, Mismatch):
        what: dict[str, str] = {"what": exc.what, "field": exc.field}
    else:
        what = {"what": "invalid object", "field": str(exc)}
    logger.error(
        "stripe event does not match the object we recorded",
        extra={"event_id": event_id, "type": event_type, **what},
    )
    return f"mismatch: {exc}"[:MAX_ERROR_LENGTH]


def _failure(exc: Exception, event_id: str, event_type: str) -> str:
    """Log a handler's failure; the `last_error` to record."""
    if isinstance(exc, RetryLater):
        logger.info("stripe event deferred", extra={"event_id": event_id, "type": event_type})
        return f"retry later: {exc}" if str(exc) else "retry later"
    logger.error(
        "stripe event handler failed",
        exc_info=exc,
        extra={"event_id": event_id, "type": event_type},
    )
    return _describe(exc)


async def transition(
    session: AsyncSession, event_id: str, to: EventStatus, **values: Any
) -> EventStatus | None:
    """The one place an event's status changes: a conditional UPDATE from the statuses that may
    move to `to`. Returns the new status, or None when the event was in no such status."""
    params = {"event_id_": event_id, **columns(_EVENTS, {"status": to, **values})}
    moved: EventStatus | None = (
        await session.execute(_TRANSITION[to], params)
    ).scalar_one_or_none()
    return moved


def _due(now: datetime) -> Any:
    return or_(StripeEvent.next_attempt_at.is_(None), StripeEvent.next_attempt_at <= now)


def _lock_due() -> Select[StripeEvent]:
    return (
        select(StripeEvent)
        .where(StripeEvent.status == EventStatus.pending)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )


async def apply_event(
    session: AsyncSession, event_id: str, *, now: datetime | None = None
) -> EventStatus | None:
    """Apply one stored event if it is pending, due and not being applied by someone else, and
    commit. Returns the event's status afterwards (None if no such event)."""
    now = now or utcnow()
    await session.commit()  # start from a fresh transaction
    row = (
        await session.execute(_lock_due().where(StripeEvent.id == event_id, _due(now)))
    ).scalar_one_or_none()
    if row is None:  # not pending, not due, or being applied by someone else right now
        status = (
            await session.execute(select(StripeEvent.status).where(StripeEvent.id == event_id))
        ).scalar_one_or_none()
        await session.commit()  # (a rollback would expire the session's objects)
        return status
    event_type = row.type
    status = await _apply_locked(session, row, now)
    await session.commit()
    WEBHOOK_EVENTS.labels(event_type, status.value).inc()
    return status


async def process_due_events(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    now: datetime | None = None,
    limit: int = 100,
) -> int:
    """Apply pending events whose `next_attempt_at` is due, oldest (Stripe time) first, each in its
    own transaction. Several workers may run this at once: locked rows are skipped. Returns how many
    events were attempted."""
    attempted = 0
    async with sessionmaker() as session:
        while attempted < limit:
            moment = now or utcnow()
            row = (
                await session.execute(
                    _lock_due()
                    .where(_due(moment))
                    .order_by(StripeEvent.created, StripeEvent.id)
                    .limit(1)
                )
            ).scalar_one_or_none()
            if row is None:
                await session.commit()
                break
            event_type = row.type
            status = await _apply_locked(session, row, moment)
            await session.commit()
            WEBHOOK_EVENTS.labels(event_type, status.value).inc()
            attempted += 1
    return attempted


async def _apply_locked(session: AsyncSession, row: StripeEvent, now: datetime) -> EventStatus:
    """Run the handler of a locked pending event and record the outcome (not committed)."""
    with _event_span(row.id, row.type, row.account, "retried") as span:
        status = await _apply_locked_event(session, row, now)
        span.set_attribute("stripe.event.outcome", status.value)
        return status


async def _apply_locked_event(
    session: AsyncSession, row: StripeEvent, now: datetime
) -> EventStatus:
    """`_apply_locked` without its span."""
    # Read everything needed before the handler runs: a rolled-back savepoint expires the row.
    event_id, event_type, attempts = row.id, row.type, row.attempts
    handler = load_handlers().get(event_type)
    if handler is None:
        await transition(
            session,
            event_id,
            EventStatus.ignored,
            processed_at=now,
            next_attempt_at=None,
            attempts=attempts + 1,
        )
        return EventStatus.ignored
    try:
        async with session.begin_nested():
            await handler(session, event_context(row))
    except SET_ASIDE as exc:
        await transition(
            session,
            event_id,
            EventStatus.mismatched,
            processed_at=now,
            next_attempt_at=None,
            attempts=attempts + 1,
            last_error=_mismatch(exc, event_id, event_type),
        )
        await notify_webhook_event_mismatched(session, event_id)
        return EventStatus.mismatched
    except Exception as exc:
        error = _failure(exc, event_id, event_type)
        return await _schedule_retry(session, event_id, attempts + 1, error, now)
    await transition(
        session,
        event_id,
        EventStatus.processed,
        processed_at=now,
        next_attempt_at=None,
        attempts=attempts + 1,
        last_error=None,
    )
    return EventStatus.processed


async def _schedule_retry(
    session: AsyncSession, event_id: str, attempts: int, error: str, now: datetime
) -> EventStatus:
    if attempts >= MAX_ATTEMPTS:
        logger.error("stripe event failed for good", extra={"event_id": event_id})
        await transition(
            session,
            event_id,
            EventStatus.failed,
            attempts=attempts,
            last_error=error,
            next_attempt_at=None,
        )
        await notify_webhook_event_failed(session, event_id)
        return EventStatus.failed
    await transition(
        session,
        event_id,
        EventStatus.pending,
        attempts=attempts,
        last_error=error,
        next_attempt_at=now + backoff(attempts),
    )
    return EventStatus.pending


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
