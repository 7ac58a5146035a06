"""What Stripe made, recorded once: a transfer paid, a reversal succeeded.

Called with the create call's answer and with the webhooks (`transfer.created`,
`transfer.reversed`, the reconciliation of objects), in whatever order they arrive: the status
move is conditional, so only its first caller writes the ledger row. Never commits, never calls
Stripe.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MovementKind
from marketplace_api.stripe_attempts import reload
from marketplace_api.transfers.models import (
    ReversalStatus,
    Transfer,
    TransferReversal,
    TransferStatus,
)
from marketplace_api.transfers.notices import notify_transfer_released
from marketplace_api.transfers.state import transition_reversal, transition_transfer


async def record_transfer_created(
    session: AsyncSession,
    transfer_id: uuid.UUID,
    stripe_id: str,
    *,
    observed_at: datetime,
) -> bool:
    """Stripe made our transfer (the create answer, or `transfer.created`): mark it paid and
    write the ledger row, once. Never commits."""
    moved = await transition_transfer(
        session,
        transfer_id,
        TransferStatus.paid,
        values={
            "stripe_transfer_id": stripe_id,
            "transferred_at": observed_at,
            "last_error": None,
            "next_attempt_at": None,
        },
    )
    if moved:
        transfer = await reload(session, Transfer, transfer_id)
        await ledger.record(
            session,
            kind=MovementKind.transfer,
            amount=transfer.amount,
            currency=transfer.currency,
            stripe_id=stripe_id,
            occurred_at=observed_at,
            payment_id=transfer.payment_id,
            order_id=transfer.order_id,
            vendor_id=transfer.vendor_id,
            details={"trigger": transfer.trigger.value},
        )
        await notify_transfer_released(session, transfer_id)
    return moved


async def record_reversal_created(
    session: AsyncSession,
    reversal_id: uuid.UUID,
    stripe_id: str,
    *,
    observed_at: datetime,
) -> bool:
    """Stripe made our reversal: mark it succeeded, add it to the transfer's `amount_reversed`
    and write the ledger row, once. Never commits."""
    moved = await transition_reversal(
        session,
        reversal_id,
        ReversalStatus.succeeded,
        values={"stripe_reversal_id": stripe_id, "last_error": None, "next_attempt_at": None},
    )
    if not moved:
        return False
    reversal = await reload(session, TransferReversal, reversal_id)
    transfer = await reload(session, Transfer, reversal.transfer_id)
    await session.execute(
        update(Transfer)
        .where(Transfer.id == transfer.id)
        .values(amount_reversed=Transfer.amount_reversed + reversal.amount)
    )
    await ledger.record(
        session,
        kind=MovementKind.transfer_reversal,
        amount=-reversal.amount,
        currency=reversal.currency,
        stripe_id=stripe_id,
        occurred_at=observed_at,
        payment_id=transfer.payment_id,
        order_id=reversal.order_id,
        vendor_id=transfer.vendor_id,
        details={
            "refund_id": str(reversal.refund_id) if reversal.refund_id else None,
            "dispute_id": str(reversal.dispute_id) if reversal.dispute_id else None,
        },
    )
    return True
