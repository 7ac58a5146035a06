"""The status machines of transfers and transfer reversals: the only code that changes them.

Each change is a conditional `UPDATE … WHERE status IN (allowed predecessors) RETURNING`, so a
webhook, the request that made the call and the retry job racing on one row change it once.
Recording another failed attempt is a move to the same status (pending → pending, failed →
failed) and is allowed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.transfers.models import (
    ReversalStatus,
    Transfer,
    TransferReversal,
    TransferStatus,
)

T = TransferStatus
TRANSFER_TRANSITIONS: Mapping[TransferStatus, frozenset[TransferStatus]] = {
    T.pending: frozenset({T.pending, T.paid, T.failed, T.skipped}),
    T.failed: frozenset({T.failed, T.paid}),
    T.paid: frozenset(),
    T.skipped: frozenset(),
}

R = ReversalStatus
REVERSAL_TRANSITIONS: Mapping[ReversalStatus, frozenset[ReversalStatus]] = {
    R.pending: frozenset({R.pending, R.succeeded, R.failed, R.canceled}),
    R.failed: frozenset({R.failed, R.succeeded, R.canceled}),
    R.succeeded: frozenset(),
    R.canceled: frozenset(),
}


async def transition_transfer(
    session: AsyncSession,
    transfer_id: uuid.UUID,
    to: TransferStatus,
    *,
    values: Mapping[str, Any] | None = None,
    where: Any = None,
) -> bool:
    sources = [s for s, nexts in TRANSFER_TRANSITIONS.items() if to in nexts]
    statement = update(Transfer).where(Transfer.id == transfer_id, Transfer.status.in_(sources))
    if where is not None:
        statement = statement.where(where)
    result = await session.execute(
        statement.values(status=to, **dict(values or {}))
        .returning(Transfer.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None


async def transition_reversal(
    session: AsyncSession,
    reversal_id: uuid.UUID,
    to: ReversalStatus,
    *,
    values: Mapping[str, Any] | None = None,
    where: Any = None,
) -> bool:
    sources = [s for s, nexts in REVERSAL_TRANSITIONS.items() if to in nexts]
    statement = update(TransferReversal).where(
        TransferReversal.id == reversal_id, TransferReversal.status.in_(sources)
    )
    if where is not None:
        statement = statement.where(where)
    result = await session.execute(
        statement.values(status=to, **dict(values or {}))
        .returning(TransferReversal.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None
