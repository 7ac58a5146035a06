"""The refund status machine: the only code that changes `refunds.status`.

pending → succeeded | failed | canceled, by conditional UPDATE. Terminal states never move, so
an older `refund.updated` (pending) arriving after `charge.refunded` changes nothing, and two
deliveries of the same success apply its effects (amounts, order status, ledger) once.

One exception, only through `fail_after_success`: Stripe reports that a refund that had
succeeded failed after all (the buyer's bank returned it). That move is made once, and whoever
makes it compensates the success's effects.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.refunds.models import Refund, RefundStatus

S = RefundStatus
ALLOWED_TRANSITIONS: Mapping[RefundStatus, frozenset[RefundStatus]] = {
    S.pending: frozenset({S.pending, S.succeeded, S.failed, S.canceled}),
    S.succeeded: frozenset(),
    S.failed: frozenset(),
    S.canceled: frozenset(),
}

# Stripe's refund status -> ours (`requires_action`: still on its way).
FROM_STRIPE: Mapping[str, RefundStatus] = {
    "pending": S.pending,
    "requires_action": S.pending,
    "succeeded": S.succeeded,
    "failed": S.failed,
    "canceled": S.canceled,
}


async def transition_refund(
    session: AsyncSession,
    refund_id: uuid.UUID,
    to: RefundStatus,
    *,
    values: Mapping[str, Any] | None = None,
) -> bool:
    sources = [s for s, nexts in ALLOWED_TRANSITIONS.items() if to in nexts]
    result = await session.execute(
        update(Refund)
        .where(Refund.id == refund_id, Refund.status.in_(sources))
        .values(status=to, **dict(values or {}))
        .returning(Refund.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None


async def fail_after_success(
    session: AsyncSession, refund_id: uuid.UUID, *, values: Mapping[str, Any] | None = None
) -> bool:
    """succeeded → failed (Stripe's `refund.failed` after success), once: True for the one
    caller that moved it."""
    result = await session.execute(
        update(Refund)
        .where(Refund.id == refund_id, Refund.status == S.succeeded)
        .values(status=S.failed, **dict(values or {}))
        .returning(Refund.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None
