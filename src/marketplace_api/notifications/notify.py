"""The admins' operator alert: money Stripe moved that needs a look, once per `source`.

Every other email is composed by the domain whose rows it describes (`payments.notices`,
`refunds.notices`, `fulfilment.notices`, `disputes.notices`, `transfers.notices`,
`vendors.notices`, `webhooks.notices`) and recorded through this package's outbox
(`recipients.send` / `service.notify_many`) in the transaction of the state change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.recipients import admin_emails, send


async def notify_operator(
    session: AsyncSession, source: str, title: str, message: str, details: Mapping[str, Any]
) -> int:
    """Every active admin: money Stripe moved that needs a look (once per `source`)."""
    shown = {name: str(value) for name, value in details.items()}
    context = {"title": title, "message": message, "details": shown}
    return await send(session, Kind.operator_alert, source, await admin_emails(session), context)
