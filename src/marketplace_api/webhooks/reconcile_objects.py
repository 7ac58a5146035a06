"""Reconcile paths of the objects that follow a payment: refunds, transfers, transfer reversals,
Checkout Sessions, disputes, and a connected account's payouts and disputes.

Each path selects at most `limit` rows that are not settled yet, oldest-checked first
(`reconcile_checks`), asks Stripe for the object (retrieve, or list and match our metadata id when
the create answer that held Stripe's id was lost), and hands what Stripe says to the webhook
handler of that object type — the same state machines and ledger writes as a delivered event,
observed now. Those are conditional transitions that never move a row backwards and ledger rows
unique per Stripe id, so a reconcile and a late (or duplicated) webhook apply a change once.

Every Stripe call happens outside any transaction; each row's result is applied and marked
checked in its own short one.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.config import ChargeType
from marketplace_api.disputes.models import Dispute
from marketplace_api.errors import ProblemError
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.refunds.models import Refund, RefundStatus
from marketplace_api.transfers import records as transfers
from marketplace_api.transfers.models import (
    ReversalStatus,
    Transfer,
    TransferReversal,
    TransferStatus,
)
from marketplace_api.webhooks.checks import ReconcileCheck, last_checked, oldest_checked_first
from marketplace_api.webhooks.checks import mark_checked as _mark_checked
from marketplace_api.webhooks.dispatch import EventContext, RetryLater, load_handlers

# Checkout Sessions of payments still waiting for the buyer (or for a delayed method).
OPEN_CHECKOUT_STATUSES = (
    PaymentStatus.requires_payment,
    PaymentStatus.requires_action,
    PaymentStatus.processing,
)


@dataclass
class Tally:
    checked: int = 0
    changed: list[str] = field(default_factory=list)  # "<id>: <from> -> <to>"


@dataclass(frozen=True, slots=True)
class Update:
    """What Stripe said, as the event type whose handler applies it."""

    event_type: str
    object: dict[str, Any]
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Row:
    id: uuid.UUID
    status: str
    values: tuple[Any, ...]  # what the fetch needs (Stripe ids, account)


Fetch = Callable[[Row], Awaitable[list[Update]]]
Status = Callable[[AsyncSession, uuid.UUID], Awaitable[str | None]]
Apply = Callable[[AsyncSession, Row, Update, datetime], Awaitable[None]]


async def apply_as_event(
    session: AsyncSession, update: Update, now: datetime, *, label: str = "reconcile"
) -> None:
    """Run the webhook handler of `update.event_type` on Stripe's object, observed `now`."""
    handler = load_handlers()[update.event_type]
    context = EventContext(
        id=f"{label}:{update.object.get('id')}",
        type=update.event_type,
        account=update.account,
        created=now,
        livemode=update.object.get("livemode") is True,
        object=update.object,
    )
    await handler(session, context)


async def _apply_event(session: AsyncSession, row: Row, update: Update, now: datetime) -> None:
    await apply_as_event(session, update, now)


async def run_kind(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    kind: str,
    rows: Sequence[Row],
    fetch: Fetch,
    status: Status,
    tally: Tally,
    errors: list[str],
    now: datetime,
    apply: Apply = _apply_event,
) -> None:
    """Fetch, apply and mark checked each row, each in its own transaction."""
    for row in rows:
        tally.checked += 1
        updates: list[Update] = []
        try:
            updates = await fetch(row)
        except ProblemError as exc:
            errors.append(f"{kind} {row.id}: {exc.code}: {exc.detail or exc.title}")
        async with sessionmaker() as session:
            try:
                for update in updates:
                    await apply(session, row, update, now)
            except RetryLater as exc:
                await session.rollback()
                errors.append(f"{kind} {row.id}: {exc}")
            await _mark_checked(session, kind, row.id, now)
            after = await status(session, row.id)
            await session.commit()
        if after is not None and after != row.status:
            tally.changed.append(f"{row.id}: {row.status} -> {after}")


def _rows(result: Sequence[Any]) -> list[Row]:
    return [
        Row(r[0], str(r[1].value if hasattr(r[1], "value") else r[1]), tuple(r[2:])) for r in result
    ]


async def _select(
    sessionmaker: async_sessionmaker[AsyncSession],
    query: Any,
    kind: str,
    id_column: Any,
    limit: int,
) -> list[Row]:
    async with sessionmaker() as session:
        result = (
            await session.execute(
                query.outerjoin(ReconcileCheck, last_checked(kind, id_column))
                .order_by(oldest_checked_first(), id_column)
                .limit(limit)
            )
        ).all()
        await session.commit()
    return _rows(result)


def _account(charge_type: ChargeType, account: str | None) -> str | None:
    """Direct charges (and everything hanging off them) live on the connected account."""
    return account if charge_type is ChargeType.direct else None


def _ours(objects: Sequence[dict[str, Any]], key: str, our_id: uuid.UUID) -> list[dict[str, Any]]:
    return [o for o in objects if (o.get("metadata") or {}).get(key) == str(our_id)]


# --- refunds -----------------------------------------------------------------------------------


async def reconcile_refunds(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    tally: Tally,
    errors: list[str],
    *,
    now: datetime,
    age: timedelta,
    limit: int,
) -> None:
    """Pending refunds: retrieved by Stripe id, or found among the PaymentIntent's refunds by our
    `refund_id` metadata when the create answer was lost. One that Stripe never made is left to
    the retry job (it creates it with the same idempotency key)."""
    rows = await _select(
        sessionmaker,
        select(
            Refund.id,
            Refund.status,
            Refund.stripe_refund_id,
            Payment.stripe_payment_intent_id,
            Payment.charge_type,
            Payment.stripe_account_id,
        )
        .join(Payment, Payment.id == Refund.payment_id)
        .where(Refund.status == RefundStatus.pending, Refund.created_at <= now - age),
        "refund",
        Refund.id,
        limit,
    )

    async def fetch(row: Row) -> list[Update]:
        stripe_id, intent_id, charge_type, account = row.values
        account = _account(charge_type, account)
        if stripe_id:
            found = [await gateway.retrieve_refund(stripe_id, stripe_account=account)]
        elif intent_id:
            listed = await gateway.list_refunds(payment_intent=intent_id, stripe_account=account)
            found = _ours(listed, "refund_id", row.id)
        else:
            return []
        return [Update("refund.updated", obj, account) for obj in found]

    await run_kind(
        sessionmaker,
        kind="refund",
        rows=rows,
        fetch=fetch,
        status=_status_of(Refund),
        tally=tally,
        errors=errors,
        now=now,
    )


def _status_of(model: Any) -> Status:
    async def status(session: AsyncSession, row_id: uuid.UUID) -> str | None:
        value = (
            await session.execute(select(model.status).where(model.id == row_id))
        ).scalar_one_or_none()
        return None if value is None else str(value.value if hasattr(value, "value") else value)

    return status


# --- transfers and reversals -------------------------------------------------------------------


async def reconcile_transfers(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    tally: Tally,
    errors: list[str],
    *,
    now: datetime,
    age: timedelta,
    limit: int,
) -> None:
    """Transfers still pending or failed: Stripe's transfers of the payment's transfer group
    carrying our `transfer_id` (a create whose answer was lost) mark ours paid."""
    rows = await _select(
        sessionmaker,
        select(Transfer.id, Transfer.status, Payment.transfer_group)
        .join(Payment, Payment.id == Transfer.payment_id)
        .where(
            Transfer.status.in_((TransferStatus.pending, TransferStatus.failed)),
            Transfer.created_at <= now - age,
            Payment.transfer_group.is_not(None),
        ),
        "transfer",
        Transfer.id,
        limit,
    )

    async def fetch(row: Row) -> list[Update]:
        (group,) = row.values
        listed = await gateway.list_transfers(transfer_group=str(group))
        return [Update("transfer.updated", obj) for obj in _ours(listed, "transfer_id", row.id)]

    await run_kind(
        sessionmaker,
        kind="transfer",
        rows=rows,
        fetch=fetch,
        status=_status_of(Transfer),
        tally=tally,
        errors=errors,
        now=now,
    )


async def reconcile_reversals(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    tally: Tally,
    errors: list[str],
    *,
    now: datetime,
    age: timedelta,
    limit: int,
) -> None:
    """Reversals still pending or failed whose transfer reached Stripe: the transfer's reversals
    carrying our `reversal_id` mark ours succeeded (amount reversed and ledger, once)."""
    rows = await _select(
        sessionmaker,
        select(TransferReversal.id, TransferReversal.status, Transfer.stripe_transfer_id)
        .join(Transfer, Transfer.id == TransferReversal.transfer_id)
        .where(
            TransferReversal.status.in_((ReversalStatus.pending, ReversalStatus.failed)),
            TransferReversal.created_at <= now - age,
            Transfer.stripe_transfer_id.is_not(None),
        ),
        "reversal",
        TransferReversal.id,
        limit,
    )

    async def fetch(row: Row) -> list[Update]:
        (transfer_id,) = row.values
        listed = await gateway.list_transfer_reversals(str(transfer_id))
        return [Update("transfer_reversal", obj) for obj in _ours(listed, "reversal_id", row.id)]

    async def apply(session: AsyncSession, row: Row, update: Update, now: datetime) -> None:
        # `transfer.*` events carry reversals inside the transfer; this is what their handler
        # does with each reversal of ours.
        await transfers.record_reversal_created(session, row.id, update.object, observed_at=now)

    await run_kind(
        sessionmaker,
        kind="reversal",
        rows=rows,
        fetch=fetch,
        status=_status_of(TransferReversal),
        tally=tally,
        errors=errors,
        now=now,
        apply=apply,
    )


# --- Checkout Sessions -------------------------------------------------------------------------


async def reconcile_checkout_sessions(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    tally: Tally,
    errors: list[str],
    *,
    now: datetime,
    age: timedelta,
    limit: int,
) -> None:
    """Unpaid payments with a Checkout Session: a `complete` session records its PaymentIntent
    (and the payment when paid), an `expired` one ends a payment it was the only way to pay —
    as `checkout.session.completed` / `expired` do. An `open` one changes nothing."""
    rows = await _select(
        sessionmaker,
        select(
            Payment.id,
            Payment.status,
            Payment.checkout_session_id,
            Payment.charge_type,
            Payment.stripe_account_id,
        ).where(
            Payment.status.in_(OPEN_CHECKOUT_STATUSES),
            Payment.checkout_session_id.is_not(None),
            Payment.status_updated_at <= now - age,
        ),
        "checkout_session",
        Payment.id,
        limit,
    )

    async def fetch(row: Row) -> list[Update]:
        session_id, charge_type, account = row.values
        account = _account(charge_type, account)
        obj = await gateway.retrieve_checkout_session(str(session_id), stripe_account=account)
        event_type = {
            "complete": "checkout.session.completed",
            "expired": "checkout.session.expired",
        }.get(str(obj.get("status")))
        return [Update(event_type, obj, account)] if event_type else []

    await run_kind(
        sessionmaker,
        kind="checkout_session",
        rows=rows,
        fetch=fetch,
        status=_status_of(Payment),
        tally=tally,
        errors=errors,
        now=now,
    )


# --- disputes ----------------------------------------------------------------------------------


def dispute_updates(obj: dict[str, Any], account: str | None) -> list[Update]:
    """A dispute object as the events that would have brought it: its status, then the funds
    withdrawn / reinstated that its balance transactions show."""
    closed = str(obj.get("status")) in ("won", "lost", "prevented", "warning_closed")
    updates = [
        Update("charge.dispute.closed" if closed else "charge.dispute.updated", obj, account)
    ]
    movements: list[int] = [
        bt["amount"]
        for bt in obj.get("balance_transactions") or []
        if isinstance(bt, dict) and isinstance(bt.get("amount"), int)
    ]
    if any(amount < 0 for amount in movements):
        updates.append(Update("charge.dispute.funds_withdrawn", obj, account))
    if any(amount > 0 for amount in movements):
        updates.append(Update("charge.dispute.funds_reinstated", obj, account))
    return updates


async def reconcile_disputes(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    tally: Tally,
    errors: list[str],
    *,
    now: datetime,
    lookback: timedelta,
    limit: int,
) -> None:
    """Open disputes are retrieved (on the connected account for direct charges) and applied;
    disputes of the platform's charges opened in the last `lookback` that we never heard of are
    listed and applied as new. (Those of direct charges are listed per connected account, with
    the vendors.)"""
    rows = await _select(
        sessionmaker,
        select(
            Dispute.id, Dispute.status, Dispute.stripe_dispute_id, Dispute.stripe_account_id
        ).where(Dispute.is_open.is_(True)),
        "dispute",
        Dispute.id,
        limit,
    )

    async def fetch(row: Row) -> list[Update]:
        stripe_id, account = row.values
        obj = await gateway.retrieve_dispute(str(stripe_id), stripe_account=account)
        return dispute_updates(obj, account)

    await run_kind(
        sessionmaker,
        kind="dispute",
        rows=rows,
        fetch=fetch,
        status=_status_of(Dispute),
        tally=tally,
        errors=errors,
        now=now,
    )
    try:
        listed = await gateway.list_disputes(
            created_since=int((now - lookback).timestamp()), limit=limit
        )
    except ProblemError as exc:
        errors.append(f"disputes list: {exc.code}: {exc.detail or exc.title}")
        return
    await apply_unknown_disputes(sessionmaker, listed, None, tally, now=now)


async def apply_unknown_disputes(
    sessionmaker: async_sessionmaker[AsyncSession],
    listed: Sequence[dict[str, Any]],
    account: str | None,
    tally: Tally,
    *,
    now: datetime,
) -> None:
    """Disputes Stripe listed that have no row of ours (their events were lost)."""
    ids = [str(d.get("id")) for d in listed if d.get("id")]
    if not ids:
        return
    async with sessionmaker() as session:
        known = set(
            (
                await session.execute(
                    select(Dispute.stripe_dispute_id).where(Dispute.stripe_dispute_id.in_(ids))
                )
            ).scalars()
        )
        await session.commit()
    for obj in listed:
        if str(obj.get("id")) in known:
            continue
        tally.checked += 1
        async with sessionmaker() as session:
            for update in dispute_updates(obj, account):
                await apply_as_event(session, update, now)
            dispute = (
                await session.execute(
                    select(Dispute.id, Dispute.status).where(
                        Dispute.stripe_dispute_id == str(obj.get("id"))
                    )
                )
            ).one_or_none()
            await session.commit()
        # None: a dispute on a charge that is not ours (a connected account sells elsewhere too).
        if dispute is not None:
            tally.changed.append(f"{dispute[0]}: none -> {dispute[1]}")


# --- payouts -----------------------------------------------------------------------------------


PAYOUT_EVENTS = {"paid": "payout.paid", "failed": "payout.failed"}


async def apply_payouts(
    sessionmaker: async_sessionmaker[AsyncSession],
    payouts: Sequence[dict[str, Any]],
    account: str,
    tally: Tally,
    *,
    now: datetime,
) -> None:
    """A connected account's paid and failed payouts, through the `payout.*` handler (its ledger
    rows are unique per payout, so a payout already recorded is not recorded again)."""
    async with sessionmaker() as session:
        for obj in payouts:
            event_type = PAYOUT_EVENTS.get(str(obj.get("status")))
            if event_type is None:
                continue
            tally.checked += 1
            await apply_as_event(session, Update(event_type, obj, account), now)
        await session.commit()
