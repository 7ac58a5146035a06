"""The vendors' "a payment was disputed" email (`dispute:<id>`), with the evidence deadline,
handed to the notifications outbox in the caller's transaction (never committed here).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.disputes.models import Dispute
from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.recipients import emails_for, fresh, fresh_row, iso
from marketplace_api.notifications.service import Email, notify_many
from marketplace_api.orders.models import Order
from marketplace_api.vendors.queries import vendor_contacts


async def notify_dispute_opened(session: AsyncSession, dispute_id: uuid.UUID) -> int:
    """Each vendor of the disputed payment, with the evidence deadline."""
    dispute = await fresh_row(session, Dispute, dispute_id)
    if dispute is None:
        return 0
    orders = list(
        (
            await fresh(
                session,
                select(Order).where(Order.payment_id == dispute.payment_id).order_by(Order.id),
            )
        ).scalars()
    )
    vendors = await vendor_contacts(session, [o.vendor_id for o in orders])
    emails: list[Email] = []
    for vendor_id, (vendor_name, vendor_email) in vendors.items():
        context = {
            "vendor_name": vendor_name,
            "dispute_id": str(dispute.id),
            "amount": dispute.amount,
            "currency": dispute.currency,
            "reason": dispute.reason.replace("_", " ") if dispute.reason else None,
            "evidence_due_by": iso(dispute.evidence_due_by),
            "order_ids": [str(o.id) for o in orders if o.vendor_id == vendor_id],
        }
        emails += emails_for(Kind.dispute_opened, f"dispute:{dispute.id}", [vendor_email], context)
    return len(await notify_many(session, emails))
