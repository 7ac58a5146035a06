"""Reads of the transfers table that release and refunds share."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.transfers.models import Transfer


async def transfer_of_order(session: AsyncSession, order_id: uuid.UUID) -> Transfer | None:
    result = await session.execute(
        select(Transfer)
        .where(Transfer.order_id == order_id)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()
