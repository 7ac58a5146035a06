"""Reconcile paths of the objects that follow a payment: refunds, transfers, transfer reversals,
Checkout Sessions, disputes, and a connected account's payouts and disputes.

Each path names its unsettled rows and how to ask Stripe for their object (retrieve, or list and
match our metadata id when the create answer that held Stripe's id was lost); `reconcile_kind`
does the rest. The handlers it applies Stripe's answers through are conditional transitions that
never move a row backwards, with ledger rows unique per Stripe id, so a reconcile and a late (or
duplicated) webhook apply a change once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.disputes.models import Dispute
from marketplace_api.errors import ProblemError
from marketplace_api.integrations.stripe import objects as stripe_objects
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.queries import charge_account
from marketplace_api.reconcile.kinds import (
    Pass,
    Row,
    Tally,
    Update,
    apply_as_event,
    ours,
    reconcile_kind,
)
from marketplace_api.refunds.models import Refund, RefundStatus
from marketplace_api.transfers import records as transfers
from marketplace_api.transfers.models import (
    ReversalStatus,
    Transfer,
    TransferReversal,
    TransferStatus,
)

# Checkout Sessions of payments still waiting for the buyer (or for a delayed method).
OPEN_CHECKOUT_STATUSES = (
    PaymentStatus.requires_payment,
    PaymentStatus.requires_action,
    PaymentStatus.processing,
)
CHECKOUT_EVENTS = {"complete": "checkout.session.completed", "expired": "checkout.session.expired"}
CLOSED_DISPUTE_STATUSES = ("won", "lost", "prevented", "warning_closed")
PAYOUT_EVENTS = {"paid": "payout.paid", "failed": "payout.failed"}


def _stuck(
    model: type[Refund | Transfer | TransferReversal], statuses: Sequence[Any], before: datetime
) -> ColumnElement[bool]:
    """Rows still in one of `statuses`, created before `before` (their answer is overdue)."""
    return and_(model.status.in_(statuses), model.created_at <= before)


async def reconcile_refunds(run: Pass, tally: Tally, *, age: timedelta) -> None:
    """Pending refunds: retrieved by Stripe id, or found among the PaymentIntent's refunds by our
    `refund_id` metadata when the create answer was lost. One that Stripe never made is left to
    the retry job (it creates it with the same idempotency key)."""

    async def fetch(row: Row) -> list[Update]:
        stripe_id, intent_id, charge_type, account = row.values
        account = charge_account(charge_type, account)
        found: list[stripe_objects.Refund] = []
        if stripe_id:
            found = [await run.gateway.retrieve_refund(stripe_id, stripe_account=account)]
        elif intent_id:
            listed = await run.gateway.list_refunds(
                payment_intent=intent_id, stripe_account=account
            )
            found = ours(listed, "refund_id", row.id)
        return [Update("refund.updated", obj, account) for obj in found]

    query = (
        select(
            Refund.id,
            Refund.status,
            Refund.stripe_refund_id,
            Payment.stripe_payment_intent_id,
            Payment.charge_type,
            Payment.stripe_account_id,
        )
        .join(Payment, Payment.id == Refund.payment_id)
        .where(_stuck(Refund, (RefundStatus.pending,), run.now - age))
    )
    await reconcile_kind(run, tally, kind="refund", model=Refund, query=query, fetch=fetch)


async def reconcile_transfers(run: Pass, tally: Tally, *, age: timedelta) -> None:
    """Transfers still pending or failed: Stripe's transfers of the payment's transfer group
    carrying our `transfer_id` (a create whose answer was lost) mark ours paid."""

    async def fetch(row: Row) -> list[Update]:
        (group,) = row.values
        listed = await run.gateway.list_transfers(transfer_group=str(group))
        return [Update("transfer.updated", obj) for obj in ours(listed, "transfer_id", row.id)]

    query = (
        select(Transfer.id, Transfer.status, Payment.transfer_group)
        .join(Payment, Payment.id == Transfer.payment_id)
        .where(
            _stuck(Transfer, (TransferStatus.pending, TransferStatus.failed), run.now - age),
            Payment.transfer_group.is_not(None),
        )
    )
    await reconcile_kind(run, tally, kind="transfer", model=Transfer, query=query, fetch=fetch)


async def reconcile_reversals(run: Pass, tally: Tally, *, age: timedelta) -> None:
    """Reversals still pending or failed whose transfer reached Stripe: the transfer's reversals
    carrying our `reversal_id` mark ours succeeded (amount reversed and ledger, once)."""

    async def fetch(row: Row) -> list[Update]:
        (transfer_id,) = row.values
        listed = await run.gateway.list_transfer_reversals(str(transfer_id))
        return [Update("transfer_reversal", obj) for obj in ours(listed, "reversal_id", row.id)]

    async def apply(session: AsyncSession, row: Row, update: Update, now: datetime) -> None:
        # `transfer.*` events carry reversals inside the transfer; this is what their handler
        # does with each reversal of ours.
        await transfers.record_reversal_created(session, row.id, update.object.id, observed_at=now)

    query = (
        select(TransferReversal.id, TransferReversal.status, Transfer.stripe_transfer_id)
        .join(Transfer, Transfer.id == TransferReversal.transfer_id)
        .where(
            _stuck(
                TransferReversal, (ReversalStatus.pending, ReversalStatus.failed), run.now - age
            ),
            Transfer.stripe_transfer_id.is_not(None),
        )
    )
    await reconcile_kind(
        run, tally, kind="reversal", model=TransferReversal, query=query, fetch=fetch, apply=apply
    )


async def reconcile_checkout_sessions(run: Pass, tally: Tally, *, age: timedelta) -> None:
    """Unpaid payments with a Checkout Session: a `complete` session records its PaymentIntent
    (and the payment when paid), an `expired` one ends a payment it was the only way to pay —
    as `checkout.session.completed` / `expired` do. An `open` one changes nothing."""

    async def fetch(row: Row) -> list[Update]:
        session_id, charge_type, account = row.values
        account = charge_account(charge_type, account)
        obj = await run.gateway.retrieve_checkout_session(str(session_id), stripe_account=account)
        event_type = CHECKOUT_EVENTS.get(str(obj.status))
        return [Update(event_type, obj, account)] if event_type else []

    query = select(
        Payment.id,
        Payment.status,
        Payment.checkout_session_id,
        Payment.charge_type,
        Payment.stripe_account_id,
    ).where(
        Payment.status.in_(OPEN_CHECKOUT_STATUSES),
        Payment.checkout_session_id.is_not(None),
        Payment.status_updated_at <= run.now - age,
    )
    await reconcile_kind(
        run, tally, kind="checkout_session", model=Payment, query=query, fetch=fetch
    )


def dispute_updates(obj: stripe_objects.Dispute, account: str | None) -> list[Update]:
    """A dispute object as the events that would have brought it: its status, then the funds
    withdrawn / reinstated that its balance transactions show."""
    closed = obj.status in CLOSED_DISPUTE_STATUSES
    updates = [
        Update("charge.dispute.closed" if closed else "charge.dispute.updated", obj, account)
    ]
    movements = [bt.amount for bt in obj.balance_transactions]
    if any(amount < 0 for amount in movements):
        updates.append(Update("charge.dispute.funds_withdrawn", obj, account))
    if any(amount > 0 for amount in movements):
        updates.append(Update("charge.dispute.funds_reinstated", obj, account))
    return updates


async def reconcile_disputes(run: Pass, tally: Tally, *, lookback: timedelta) -> None:
    """Open disputes are retrieved (on the connected account for direct charges) and applied;
    disputes of the platform's charges opened in the last `lookback` that we never heard of are
    listed and applied as new. (Those of direct charges are listed per connected account, with
    the vendors.)"""

    async def fetch(row: Row) -> list[Update]:
        stripe_id, account = row.values
        obj = await run.gateway.retrieve_dispute(str(stripe_id), stripe_account=account)
        return dispute_updates(obj, account)

    query = select(
        Dispute.id, Dispute.status, Dispute.stripe_dispute_id, Dispute.stripe_account_id
    ).where(Dispute.is_open.is_(True))
    await reconcile_kind(run, tally, kind="dispute", model=Dispute, query=query, fetch=fetch)
    try:
        listed = await run.gateway.list_disputes(
            created_since=int((run.now - lookback).timestamp()), limit=run.limit
        )
    except ProblemError as exc:
        run.failed("disputes list", exc)
        return
    await apply_unknown_disputes(run, listed, None, tally)


async def apply_unknown_disputes(
    run: Pass, listed: Sequence[stripe_objects.Dispute], account: str | None, tally: Tally
) -> None:
    """Disputes Stripe listed that have no row of ours (their events were lost)."""
    if not listed:
        return
    async with run.sessionmaker() as session:
        known = set(
            (
                await session.execute(
                    select(Dispute.stripe_dispute_id).where(
                        Dispute.stripe_dispute_id.in_([d.id for d in listed])
                    )
                )
            ).scalars()
        )
        await session.commit()
    for obj in listed:
        if obj.id in known:
            continue
        tally.checked += 1
        async with run.sessionmaker() as session:
            for update in dispute_updates(obj, account):
                await apply_as_event(session, update, run.now)
            dispute = (
                await session.execute(
                    select(Dispute.id, Dispute.status).where(Dispute.stripe_dispute_id == obj.id)
                )
            ).one_or_none()
            await session.commit()
        # None: a dispute on a charge that is not ours (a connected account sells elsewhere too).
        if dispute is not None:
            tally.changed.append(f"{dispute[0]}: none -> {dispute[1]}")


async def apply_payouts(
    run: Pass, payouts: Sequence[stripe_objects.Payout], account: str, tally: Tally
) -> None:
    """A connected account's paid and failed payouts, through the `payout.*` handler (its ledger
    rows are unique per payout, so a payout already recorded is not recorded again)."""
    async with run.sessionmaker() as session:
        for obj in payouts:
            event_type = PAYOUT_EVENTS.get(str(obj.status))
            if event_type is None:
                continue
            tally.checked += 1
            await apply_as_event(session, Update(event_type, obj, account), run.now)
        await session.commit()
