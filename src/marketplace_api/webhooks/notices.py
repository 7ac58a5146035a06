"""The admins' emails about a stored Stripe event: failed for good, or set aside because it
disagreed with our row (`stripe_event:<evt_…>`), handed to the notifications outbox in the
caller's transaction (never committed here).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.recipients import admin_emails, fresh_row, send
from marketplace_api.webhooks.models import StripeEvent


async def notify_webhook_event_failed(session: AsyncSession, event_id: str) -> int:
    """Every active admin: a stored Stripe event failed for good (one email per event). Call
    when the event is moved to `failed`."""
    return await _notify_event(session, event_id, Kind.webhook_event_failed, attempts=True)


async def notify_webhook_event_mismatched(session: AsyncSession, event_id: str) -> int:
    """Every active admin: a Stripe event disagreed with the row it named and was set aside
    (one email per event). Call when the event is stored `mismatched`."""
    return await _notify_event(session, event_id, Kind.webhook_event_mismatched, attempts=False)


async def _notify_event(session: AsyncSession, event_id: str, kind: Kind, *, attempts: bool) -> int:
    event = await fresh_row(session, StripeEvent, event_id)
    if event is None:
        return 0
    context: dict[str, Any] = {"event_id": event.id, "event_type": event.type}
    if attempts:
        context["attempts"] = event.attempts
    context["last_error"] = (event.last_error or "")[:500] or None
    return await send(
        session, kind, f"stripe_event:{event.id}", await admin_emails(session), context
    )
