"""Webhook handlers for refunds: `refund.created/updated/failed`, `charge.refund.updated`,
`charge.refunded`, and `application_fee.refunded` (Stripe's fee refunds against our split).

Our refund is found by `metadata.refund_id` (we set it), then the Stripe refund id; the state
machine decides (terminal states never move back), so duplicates and out-of-order deliveries
apply once. Never commits, never calls Stripe.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.integrations.stripe.objects import Refund as StripeRefund
from marketplace_api.integrations.stripe.objects import RefundedCharge
from marketplace_api.payments import duplicates
from marketplace_api.refunds import fees, sync
from marketplace_api.webhooks.binding import Source
from marketplace_api.webhooks.dispatch import EventContext, handles

logger = logging.getLogger(__name__)


@handles("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
async def on_refund(session: AsyncSession, event: EventContext) -> None:
    obj = event.parse(StripeRefund)
    if duplicates.names_duplicate(obj):  # the refund of a second PaymentIntent
        await duplicates.apply_duplicate_refund(
            session, obj, observed_at=event.created, source=Source(event.account)
        )
        return
    refund = await sync.apply_refund_object(
        session, obj, observed_at=event.created, source=Source(event.account)
    )
    if refund is None:
        logger.info("refund event for a refund that is not ours", extra={"event_id": event.id})


@handles("charge.refunded")
async def on_charge_refunded(session: AsyncSession, event: EventContext) -> None:
    """The charge carries its refunds only when expanded; each one present is applied. Without
    them, `refund.*` events (or the create answer) carry the details."""
    for refund in event.parse(RefundedCharge).refunds.data:
        await sync.apply_refund_object(
            session, refund, observed_at=event.created, source=Source(event.account)
        )


@handles("application_fee.refunded")
async def on_application_fee_refunded(session: AsyncSession, event: EventContext) -> None:
    """Stripe's fee refunds against our split of the refunds: a rounding difference (a minor
    unit) is recorded in the ledger (`refunds.fees`)."""
    # No typed application fee yet: `refunds.fees` reads Stripe's JSON.
    await fees.reconcile_fee_refunds(
        session, event.object, observed_at=event.created, account=event.account
    )
