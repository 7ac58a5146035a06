"""Webhook handlers for transfers (`transfer.created/updated/reversed`) and connected accounts'
payouts (`payout.paid/failed`).

A transfer or reversal we made carries our ids in metadata: the event records it when the
create answer was lost (timeout, crash). Payouts are recorded in the ledger on the vendor of
`event.account`. Never commits, never calls Stripe.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.integrations.stripe.objects import Payout
from marketplace_api.integrations.stripe.objects import Transfer as StripeTransfer
from marketplace_api.integrations.stripe.objects import TransferReversal as StripeTransferReversal
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.transfers import records as service
from marketplace_api.transfers.models import Transfer, TransferReversal
from marketplace_api.vendors.models import Vendor
from marketplace_api.vendors.notices import notify_payout_failed
from marketplace_api.webhooks.binding import Mismatch, metadata_id, verify
from marketplace_api.webhooks.dispatch import EventContext, RetryLater, handles

logger = logging.getLogger(__name__)


@handles("transfer.created", "transfer.updated", "transfer.reversed")
async def on_transfer(session: AsyncSession, event: EventContext) -> None:
    """Transfers live on the platform (no `event.account`); each transfer and reversal must be
    the one we recorded: Stripe id, amount, currency and destination (`Mismatch` otherwise)."""
    obj = event.parse(StripeTransfer)
    transfer_id = metadata_id(obj.metadata, "transfer_id")
    transfer = await session.get(Transfer, transfer_id) if transfer_id is not None else None
    if transfer_id is not None:
        if transfer is None:
            raise RetryLater(f"transfer {transfer_id} is not committed yet")
        verify(
            f"transfer {transfer.id}",
            obj,
            ids=[transfer.stripe_transfer_id],
            amount=transfer.amount,
            currency=transfer.currency,
            account=event.account,
            expected_account=None,
            references={"destination": transfer.destination},
        )
    reversals: list[tuple[uuid.UUID, StripeTransferReversal]] = []
    for reversal in obj.reversals.data:
        reversal_id = metadata_id(reversal.metadata, "reversal_id")
        row = await session.get(TransferReversal, reversal_id) if reversal_id else None
        if reversal_id is None or row is None:
            continue
        stored_transfer = await session.get(Transfer, row.transfer_id)
        ours = stored_transfer.stripe_transfer_id if stored_transfer else None
        verify(
            f"transfer reversal {row.id}",
            reversal,
            ids=[row.stripe_reversal_id],
            amount=row.amount,
            currency=row.currency,
            references={"transfer": ours},
        )
        if ours is not None and ours != obj.id:
            raise Mismatch(f"transfer reversal {row.id}", "transfer", ours, obj.id)
        reversals.append((reversal_id, reversal))
    # Everything is verified before anything moves.
    if transfer is not None:
        await service.record_transfer_created(
            session, transfer.id, obj.id, observed_at=event.created
        )
    for reversal_id, reversal in reversals:
        await service.record_reversal_created(
            session, reversal_id, reversal.id, observed_at=event.created
        )


@handles("payout.paid", "payout.failed")
async def on_payout(session: AsyncSession, event: EventContext) -> None:
    """A connected account's payout to its bank: `payout` (-amount) on the vendor's statement;
    a failed payout that was recorded as paid comes back (`payout_failed`, +amount)."""
    if not event.account:
        logger.info("payout event without account", extra={"event_id": event.id})
        return
    payout = event.parse(Payout)
    vendor_id = (
        await session.execute(select(Vendor.id).where(Vendor.stripe_account_id == event.account))
    ).scalar_one_or_none()
    if vendor_id is None:
        logger.info("payout of an unknown account", extra={"event_id": event.id})
        return
    payout_id, amount = payout.id, payout.amount
    common: dict[str, Any] = {
        "currency": payout.currency,
        "stripe_id": payout_id,
        "occurred_at": event.created,
        "vendor_id": vendor_id,
    }
    if event.type == "payout.paid":
        details = {"arrival_date": payout.arrival_date, "method": payout.method}
        await ledger.record(
            session, kind=MovementKind.payout, amount=-amount, details=details, **common
        )
        return
    was_paid = (
        await session.execute(
            select(
                exists().where(
                    MoneyMovement.kind == MovementKind.payout,
                    MoneyMovement.stripe_id == payout_id,
                )
            )
        )
    ).scalar()
    if was_paid:
        await ledger.record(
            session,
            kind=MovementKind.payout_failed,
            amount=amount,
            details={"failure_code": payout.failure_code},
            **common,
        )
    else:
        logger.warning("payout failed", extra={"payout": payout_id, "failure": payout.failure_code})
    await notify_payout_failed(session, event.account, event.object)
