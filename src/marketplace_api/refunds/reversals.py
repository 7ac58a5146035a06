"""Transfer reversals: taking a vendor's share back from a transfer already made, for a refund
(once the refund has succeeded, never before) or a lost dispute.

The reversal row is written by whoever decides it (the refund's reservation, the dispute's
handler); this module makes its Stripe call, `POST /v1/transfers/{id}/reversals` with the row's
key, once its transfer has a Stripe id. A reversal that waits for its transfer is made right
after the transfer is (`execute_pending_reversals`), or by the retry job.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api import stripe_attempts
from marketplace_api.config import Settings
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.refunds.models import Refund, RefundStatus
from marketplace_api.stripe_attempts import reload
from marketplace_api.transfers.models import ReversalStatus, Transfer, TransferReversal
from marketplace_api.transfers.records import record_reversal_created
from marketplace_api.transfers.state import record_failed_call, transition_reversal

DUE = (ReversalStatus.pending, ReversalStatus.failed)


async def execute_reversal(
    session: AsyncSession,
    gateway: StripeGateway,
    reversal_id: uuid.UUID,
    *,
    now: datetime,
    settings: Settings | None = None,
) -> TransferReversal:
    """Make the Stripe call of a pending or failed reversal, once its transfer has a Stripe id.
    A dispute reversal is canceled instead when `REVERSE_TRANSFER_ON_DISPUTE_LOSS` is off."""
    reversal = await reload(session, TransferReversal, reversal_id)
    transfer = await reload(session, Transfer, reversal.transfer_id)
    await session.commit()
    if transfer.stripe_transfer_id is None:
        return reversal  # made when the transfer is (execute_transfer, retry job)
    if reversal.refund_id is not None:
        refund_status = (
            await session.execute(select(Refund.status).where(Refund.id == reversal.refund_id))
        ).scalar_one()
        await session.commit()
        if refund_status is not RefundStatus.succeeded:
            # The buyer's money is not back yet (pending, or Stripe's answer unknown): the
            # vendor keeps its share until the refund succeeds; a failed one cancels this.
            return reversal
    if (
        reversal.dispute_id is not None
        and settings is not None
        and not settings.reverse_transfer_on_dispute_loss
    ):
        await transition_reversal(
            session,
            reversal.id,
            ReversalStatus.canceled,
            values={
                "last_error": "REVERSE_TRANSFER_ON_DISPUTE_LOSS is off",
                "next_attempt_at": None,
            },
        )
        await session.commit()
        return await reload(session, TransferReversal, reversal.id)
    reversal, claimed = await stripe_attempts.claim(
        session, TransferReversal, reversal.id, TransferReversal.status.in_(DUE), now=now
    )
    if not claimed:
        await session.commit()
        return reversal
    await stripe_attempts.call(
        session,
        "transfer reversal",
        partial(
            gateway.create_transfer_reversal,
            transfer.stripe_transfer_id,
            amount=reversal.amount,
            metadata=_metadata(reversal),
            idempotency_key=reversal.idempotency_key,
        ),
        ids={"reversal_id": str(reversal.id)},
        record=lambda created: record_reversal_created(
            session, reversal.id, created.id, observed_at=now
        ),
        record_failure=lambda failure: record_failed_call(session, reversal, failure, now=now),
    )
    return await reload(session, TransferReversal, reversal.id)


def _metadata(reversal: TransferReversal) -> dict[str, str]:
    metadata = {
        "reversal_id": str(reversal.id),
        "order_id": str(reversal.order_id),
        "transfer_id": str(reversal.transfer_id),
    }
    if reversal.refund_id is not None:
        metadata["refund_id"] = str(reversal.refund_id)
    if reversal.dispute_id is not None:
        metadata["dispute_id"] = str(reversal.dispute_id)
    return metadata


async def execute_pending_reversals(
    session: AsyncSession,
    gateway: StripeGateway,
    transfer_id: uuid.UUID,
    *,
    now: datetime,
    settings: Settings | None = None,
) -> None:
    """Reversals that waited for this transfer to reach Stripe (a refund raced the release)."""
    ids = (
        (
            await session.execute(
                select(TransferReversal.id).where(
                    TransferReversal.transfer_id == transfer_id,
                    TransferReversal.status == ReversalStatus.pending,
                )
            )
        )
        .scalars()
        .all()
    )
    await session.commit()
    for reversal_id in ids:
        await execute_reversal(session, gateway, reversal_id, now=now, settings=settings)
