"""Events that wait for a row we have not recorded yet (`RetryLater`) are retried with a backoff.
When the row they wait for is recorded, waiting longer helps nobody: `wake_events_waiting_on`
makes them due at once and asks the job queue to apply them now.

The usual case: Stripe sends a Checkout Session's `payment_intent.succeeded` (and, with a
disputed card, the dispute events) before `checkout.session.completed`, which is what records
that PaymentIntent as the payment's.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.jobs.app import MAINTENANCE_QUEUE
from marketplace_api.jobs.enqueue import enqueue
from marketplace_api.webhooks.models import EventStatus, StripeEvent

DUE_EVENTS_TASK = "process_due_webhook_events"


async def wake_events_waiting_on(session: AsyncSession, stripe_id: str, *, now: datetime) -> None:
    """Make the pending events about `stripe_id` (the object itself, or one naming it as its
    PaymentIntent) due now, in the caller's transaction."""
    obj = StripeEvent.payload["data"]["object"]
    woken = await session.execute(
        update(StripeEvent)
        .where(
            StripeEvent.status == EventStatus.pending,
            or_(obj["id"].astext == stripe_id, obj["payment_intent"].astext == stripe_id),
        )
        .values(next_attempt_at=now)
        .returning(StripeEvent.id)
    )
    if woken.first() is not None:
        await enqueue(
            session,
            DUE_EVENTS_TASK,
            queue=MAINTENANCE_QUEUE,
            args={"timestamp": int(now.timestamp())},
            queueing_lock=DUE_EVENTS_TASK,
        )
