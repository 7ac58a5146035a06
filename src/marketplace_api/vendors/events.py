"""Webhook handlers for connected accounts (Connect endpoint events).

Each runs inside the webhook pipeline's transaction: it changes the vendor through the service's
state-machine functions, never commits and never calls Stripe. Ordering is handled there: an
event older than the stored account state changes nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.integrations.stripe.objects import (
    Account,
    Capability,
    parse_object,
    parse_part,
)
from marketplace_api.vendors import service
from marketplace_api.vendors.notices import notify_requirements_due
from marketplace_api.webhooks.binding import Mismatch, Source
from marketplace_api.webhooks.dispatch import EventContext, handles

logger = logging.getLogger(__name__)


@handles("account.updated")
async def on_account_updated(session: AsyncSession, event: EventContext) -> None:
    """The event carries the whole account: apply it as a snapshot taken at `event.created`.

    An account no vendor matches (no `vendor_id` metadata of ours, unknown id) is not ours to
    track: acknowledged and ignored. The vendor row always exists before its account (setup needs
    the profile), so there is nothing to wait for.
    """
    account = parse_object(Account, event.object)
    vendor = await service.apply_stripe_account(
        session, account, observed_at=event.created, source=Source(event.account)
    )
    if vendor is None:
        logger.info("account.updated for an unknown account", extra={"event_id": event.id})
        return
    await notify_requirements_due(
        session, vendor.id, deadline=account.requirements.current_deadline
    )


@handles("capability.updated")
async def on_capability_updated(session: AsyncSession, event: EventContext) -> None:
    """A capability changed. Recorded, and a lost payment capability stops sales at once; the
    upgrade to `active` waits for the full account (`account.updated`, refresh, reconcile)."""
    capability = parse_part(Capability, event.object)
    account_id = event.account or capability.account
    named = capability.account
    if event.account and named is not None and named != event.account:
        raise Mismatch(f"account {event.account}", "capability account", event.account, named)
    name, status = capability.id, capability.status
    if account_id is None or name is None or status is None:
        logger.warning("capability.updated without account/id/status", extra={"event_id": event.id})
        return
    await service.apply_capability(
        session,
        account_id,
        capability=name,
        capability_status=status,
        observed_at=event.created,
    )


@handles("account.application.deauthorized")
async def on_account_deauthorized(session: AsyncSession, event: EventContext) -> None:
    """The connected account left the platform (`event.account`); the vendor is disabled."""
    if not event.account:
        logger.warning("deauthorization event without an account", extra={"event_id": event.id})
        return
    await service.mark_deauthorized(session, event.account, observed_at=event.created)
