"""The vendor's account emails: a payout failed (`payout:<po_…>`) and Stripe needing more
information (`vendor:<id>:requirements:<hash>`), handed to the notifications outbox in the
caller's transaction (never committed here).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.integrations.stripe.objects import Payout, parse_object
from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.recipients import fresh, fresh_row, send
from marketplace_api.vendors.models import Vendor
from marketplace_api.vendors.queries import vendor_contacts


async def _vendor_by_account(session: AsyncSession, stripe_account_id: str) -> Vendor | None:
    return (
        await fresh(session, select(Vendor).where(Vendor.stripe_account_id == stripe_account_id))
    ).scalar_one_or_none()


async def notify_payout_failed(
    session: AsyncSession, stripe_account_id: str, payout: Payout | Mapping[str, Any]
) -> int:
    """The vendor whose connected account's payout failed (`payout`: the payout of a
    `payout.failed` Connect event, typed or as Stripe's JSON)."""
    if not isinstance(payout, Payout):
        payout = parse_object(Payout, payout)
    vendor = await _vendor_by_account(session, stripe_account_id)
    if vendor is None:
        return 0
    contacts = await vendor_contacts(session, [vendor.id])
    vendor_name, vendor_email = contacts[vendor.id]
    context = {
        "vendor_name": vendor_name,
        "payout_id": payout.id,
        "amount": payout.amount,
        "currency": payout.currency,
        "failure_code": payout.failure_code,
        "failure_message": payout.failure_message,
    }
    return await send(session, Kind.payout_failed, f"payout:{payout.id}", [vendor_email], context)


async def notify_requirements_due(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    *,
    deadline: int | None = None,
) -> int:
    """The vendor's "Stripe needs more information": what is currently (and past) due on the
    vendor row, and Stripe's `account.requirements.current_deadline` when given. Call after an
    account snapshot was applied. One email per distinct set of due requirements (an account
    updated ten times with the same requirements sends one); nothing when nothing is due."""
    vendor = await fresh_row(session, Vendor, vendor_id)
    if vendor is None:
        return 0
    currently_due = sorted(vendor.requirements_currently_due or [])
    past_due = sorted(vendor.requirements_past_due or [])
    if not currently_due and not past_due:
        return 0
    contacts = await vendor_contacts(session, [vendor_id])
    vendor_name, vendor_email = contacts[vendor_id]
    context = {
        "vendor_name": vendor_name,
        "currently_due": currently_due,
        "past_due": past_due,
        "deadline": None if deadline is None else datetime.fromtimestamp(deadline, UTC).isoformat(),
    }
    digest = hashlib.sha256("|".join([*currently_due, "#", *past_due]).encode()).hexdigest()
    source = f"vendor:{vendor_id}:requirements:{digest[:16]}"
    return await send(session, Kind.requirements_due, source, [vendor_email], context)
