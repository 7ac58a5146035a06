"""Use cases of the webhook pipeline: receive a verified event, and the admin's view and retry."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.errors import UnprocessableEntity
from marketplace_api.pagination import cursor_time
from marketplace_api.webhooks.envelope import parse_event
from marketplace_api.webhooks.exceptions import (
    EventAlreadyProcessed,
    EventNotFound,
    EventStoreUnavailable,
    InvalidPayload,
)
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.webhooks.pipeline import apply_event, receive, transition, utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Receipt:
    event_id: str
    status: EventStatus
    duplicate: bool


async def receive_event(
    session: AsyncSession, event: dict[str, Any], *, now: datetime | None = None
) -> Receipt:
    """Store a verified event and apply it, in one transaction (`pipeline.receive`).

    Once stored, the answer is a receipt whatever the handler did: a failed or deferred event is
    retried by our own job, so Stripe must not retry it. Failing to store it is a 503 (Stripe
    delivers it again)."""
    new = parse_event(event)
    try:
        status, inserted = await receive(session, new, now=now or utcnow())
    except DataError as exc:  # e.g. a \u0000 in a string, which JSONB refuses
        await _safe_rollback(session)
        raise InvalidPayload("The event cannot be stored as JSON.") from exc
    except (SQLAlchemyError, OSError) as exc:
        logger.exception("could not store stripe event", extra={"event_id": new.id})
        await _safe_rollback(session)
        raise EventStoreUnavailable() from exc
    return Receipt(new.id, status or EventStatus.pending, duplicate=not inserted)


async def _safe_rollback(session: AsyncSession) -> None:
    try:
        await session.rollback()
    except (SQLAlchemyError, OSError):
        logger.warning("rollback failed after a database error")


# --- admin -----------------------------------------------------------------------------------


class InvalidCursor(UnprocessableEntity):
    code = "invalid_cursor"
    title = "Invalid pagination cursor"


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[StripeEvent]
    next_cursor: str | None


def _encode_cursor(event: StripeEvent) -> str:
    raw = json.dumps([event.created_at.isoformat(), event.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        received_at, event_id = json.loads(raw)
        moment = cursor_time(received_at)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor("The cursor is not one this API returned.") from exc
    # The id is compared with a text column: PostgreSQL refuses NUL in text.
    if not isinstance(event_id, str) or "\x00" in event_id or len(event_id) > 255:
        raise InvalidCursor("The cursor is not one this API returned.")
    return moment, event_id


async def list_events(
    session: AsyncSession,
    *,
    status: EventStatus | None = None,
    event_type: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> EventPage:
    """Newest received first, keyset-paginated on (received at, id)."""
    query = select(StripeEvent).order_by(StripeEvent.created_at.desc(), StripeEvent.id.desc())
    if status is not None:
        query = query.where(StripeEvent.status == status)
    if event_type:
        query = query.where(StripeEvent.type == event_type)
    if cursor:
        received_at, event_id = _decode_cursor(cursor)
        query = query.where(
            tuple_(StripeEvent.created_at, StripeEvent.id) < tuple_(received_at, event_id)
        )
    rows = list((await session.execute(query.limit(limit + 1))).scalars())
    more = len(rows) > limit
    items = rows[:limit]
    return EventPage(items, _encode_cursor(items[-1]) if more and items else None)


async def get_event(session: AsyncSession, event_id: str) -> StripeEvent:
    event = await session.get(StripeEvent, event_id, populate_existing=True)
    if event is None:
        raise EventNotFound()
    return event


async def retry_event(
    session: AsyncSession, event_id: str, *, now: datetime | None = None
) -> StripeEvent:
    """Make a failed, ignored or pending event due now (attempts start again) and apply it at
    once. A processed event is final: 409."""
    now = now or utcnow()
    event = await session.get(StripeEvent, event_id, with_for_update=True, populate_existing=True)
    if event is None:
        await session.rollback()
        raise EventNotFound()
    if event.status is EventStatus.processed:
        await session.rollback()
        raise EventAlreadyProcessed("A processed event is final; it is never applied twice.")
    await transition(session, event_id, EventStatus.pending, attempts=0, next_attempt_at=now)
    await session.commit()
    await apply_event(session, event_id, now=now)
    return await get_event(session, event_id)
