"""The status machines of transfers and transfer reversals: the only code that changes them.

Each change is a conditional `UPDATE … WHERE status IN (allowed predecessors) RETURNING`, so a
webhook, the request that made the call and the retry job racing on one row change it once.
Recording another failed attempt is a move to the same status (pending → pending, failed →
failed) and is allowed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.stripe_attempts import Failure
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

MACHINES: Mapping[type[Transfer] | type[TransferReversal], Mapping[Any, frozenset[Any]]] = {
    Transfer: TRANSFER_TRANSITIONS,
    TransferReversal: REVERSAL_TRANSITIONS,
}


async def transition_transfer(
    session: AsyncSession,
    transfer_id: uuid.UUID,
    to: TransferStatus,
    *,
    values: Mapping[str, Any] | None = None,
    where: Any = None,
) -> bool:
    return await _transition(session, Transfer, transfer_id, to, values, where)


async def transition_reversal(
    session: AsyncSession,
    reversal_id: uuid.UUID,
    to: ReversalStatus,
    *,
    values: Mapping[str, Any] | None = None,
    where: Any = None,
) -> bool:
    return await _transition(session, TransferReversal, reversal_id, to, values, where)


async def _transition(
    session: AsyncSession,
    model: type[Transfer] | type[TransferReversal],
    row_id: uuid.UUID,
    to: TransferStatus | ReversalStatus,
    values: Mapping[str, Any] | None,
    where: Any,
) -> bool:
    sources = [s for s, nexts in MACHINES[model].items() if to in nexts]
    statement = update(model).where(model.id == row_id, model.status.in_(sources))
    if where is not None:
        statement = statement.where(where)
    result = await session.execute(
        statement.values(status=to, **dict(values or {}))
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None


async def record_failed_call(
    session: AsyncSession, row: Transfer | TransferReversal, failure: Failure, *, now: datetime
) -> bool:
    """Record a failed Stripe call of a transfer or reversal; True when the row is failed now.

    A transient failure leaves a pending row pending, to be retried with the SAME key (Stripe may
    have made it). A refusal, or any failure of a row that had already failed, makes it failed;
    a refusal created nothing, so the key generation moves on and the retry is a new request.
    Recorded only if no other caller moved the key generation since this call read it."""
    generation = row.key_generation
    values = {
        **failure.values(row.attempts + 1, now),
        "key_generation": generation if failure.transient else generation + 1,
    }
    failed = not (failure.transient and row.status in (T.pending, R.pending))
    model, status = type(row), type(row.status)
    await _transition(
        session,
        model,
        row.id,
        status.failed if failed else status.pending,
        values,
        model.key_generation == generation,
    )
    return failed
