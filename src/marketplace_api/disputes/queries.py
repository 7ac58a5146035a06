"""Reads of the disputes table that release and refunds need (one definition of "open")."""

from __future__ import annotations

import uuid

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.disputes.models import Dispute


async def has_open_dispute(session: AsyncSession, payment_id: uuid.UUID) -> bool:
    query = select(exists().where(Dispute.payment_id == payment_id, Dispute.is_open.is_(True)))
    return bool((await session.execute(query)).scalar())
