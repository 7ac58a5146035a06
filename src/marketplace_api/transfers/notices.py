"""The transfer emails: the vendor's "funds released" and the admins' "transfer failed", both
keyed `transfer:<id>` and handed to the notifications outbox in the caller's transaction (never
committed here).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.recipients import admin_emails, fresh_row, send
from marketplace_api.transfers.models import Transfer
from marketplace_api.vendors.queries import vendor_contacts


async def notify_transfer_released(session: AsyncSession, transfer_id: uuid.UUID) -> int:
    """The vendor's "funds released": call when the transfer row is paid."""
    transfer = await fresh_row(session, Transfer, transfer_id)
    if transfer is None:
        return 0
    vendors = await vendor_contacts(session, [transfer.vendor_id])
    if transfer.vendor_id not in vendors:
        return 0
    vendor_name, vendor_email = vendors[transfer.vendor_id]
    context = {
        "vendor_name": vendor_name,
        "order_id": str(transfer.order_id),
        "transfer_id": str(transfer.id),
        "amount": transfer.amount,
        "currency": transfer.currency,
    }
    return await send(
        session, Kind.transfer_released, f"transfer:{transfer.id}", [vendor_email], context
    )


async def notify_transfer_failed(session: AsyncSession, transfer_id: uuid.UUID) -> int:
    """Every active admin: a transfer to a vendor failed for good (one email per transfer)."""
    transfer = await fresh_row(session, Transfer, transfer_id)
    if transfer is None:
        return 0
    contacts = await vendor_contacts(session, [transfer.vendor_id])
    context = {
        "order_id": str(transfer.order_id),
        "transfer_id": str(transfer.id),
        "vendor_name": contacts.get(transfer.vendor_id, (str(transfer.vendor_id), ""))[0],
        "amount": transfer.amount,
        "currency": transfer.currency,
        "attempts": transfer.attempts,
        "error": transfer.last_error,
    }
    return await send(
        session,
        Kind.transfer_failed,
        f"transfer:{transfer.id}",
        await admin_emails(session),
        context,
    )
