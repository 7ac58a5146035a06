"""Webhook handlers for `charge.dispute.*`. Disputes on direct charges arrive on the Connect
endpoint with `event.account`; the charge id finds our payment either way."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.disputes import service
from marketplace_api.integrations.stripe.objects import Dispute as StripeDispute
from marketplace_api.webhooks.dispatch import EventContext, handles


@handles("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed")
async def on_dispute(session: AsyncSession, event: EventContext) -> None:
    await service.apply_dispute(
        session, event.parse(StripeDispute), observed_at=event.created, account=event.account
    )


@handles("charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated")
async def on_dispute_funds(session: AsyncSession, event: EventContext) -> None:
    # The dispute row first (funds_withdrawn usually comes with created, in any order).
    dispute = event.parse(StripeDispute)
    await service.apply_dispute(session, dispute, observed_at=event.created, account=event.account)
    await service.record_dispute_funds(
        session,
        dispute,
        observed_at=event.created,
        reinstated=event.type.endswith("funds_reinstated"),
    )
