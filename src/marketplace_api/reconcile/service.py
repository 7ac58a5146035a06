"""Reconciliation: pull authoritative state from Stripe for whatever webhooks left behind.

A lost or never-subscribed webhook must not leave any row of ours different from Stripe. One
`reconcile` run (`marketplace-api reconcile`, and the periodic job every 10 minutes):

1. retries the stored events that are due (`process_due_events`), and with `retry_failed` puts
   failed events back to pending first;
2. payments not final `pending_age` after their last status change, and paid ones whose charge
   is not recorded: their PaymentIntent (`Stripe-Account` for direct charges) through
   `apply_payment_intent`;
3. every other object kind that is not settled yet, in `objects`: pending refunds,
   pending/failed transfers and reversals, unpaid payments' Checkout Sessions, open disputes
   (plus disputes opened in the last `lookback` that we never heard of);
4. every vendor with a Stripe account, active ones included, round-robin: its account
   (`apply_stripe_account`), and the payouts and disputes listed on that connected account.

Each kind takes at most `batch_size` rows per run, the ones checked longest ago first (the
`reconcile_checks` cursor), so a run stays bounded and a backlog of any size is worked through by
successive runs; a week of lost webhooks for fewer than `batch_size` objects of each kind heals in
one run. What Stripe answers goes through the same state machines and ledger writes as the
webhook handlers (observed now), never a blind copy: a reconcile and a late webhook cannot both
apply a change, and nothing moves backwards. Each Stripe call happens outside any transaction;
each result is applied in its own short one.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.errors import ProblemError
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.integrations.stripe.objects import PaymentIntent
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.state import apply_payment_intent
from marketplace_api.reconcile import objects as paths
from marketplace_api.reconcile.checks import (
    ReconcileCheck,
    last_checked,
    mark_checked,
    oldest_checked_first,
)
from marketplace_api.reconcile.kinds import Pass, Row, Tally, Update, reconcile_kind
from marketplace_api.vendors.models import Vendor
from marketplace_api.vendors.service import apply_stripe_account
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.webhooks.pipeline import process_due_events, transition

logger = logging.getLogger(__name__)

UNSETTLED_PAYMENT_STATUSES = (
    PaymentStatus.requires_payment,
    PaymentStatus.requires_action,
    PaymentStatus.processing,
)
# Kinds reported besides payments and vendors, in the order they run.
OBJECT_KINDS = ("refunds", "transfers", "reversals", "checkout_sessions", "disputes", "payouts")


@dataclass
class ReconcileReport:
    failed_events_rearmed: int = 0
    events_attempted: int = 0
    payments: Tally = field(default_factory=Tally)
    vendors: Tally = field(default_factory=Tally)
    objects: dict[str, Tally] = field(
        default_factory=lambda: {kind: Tally() for kind in OBJECT_KINDS}
    )
    errors: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"events: {self.events_attempted} due event(s) attempted"
            + (
                f", {self.failed_events_rearmed} failed event(s) re-armed"
                if self.failed_events_rearmed
                else ""
            ),
        ]
        for kind, tally in {"payments": self.payments, "vendors": self.vendors}.items():
            lines.append(f"{kind}: {tally.checked} checked, {len(tally.changed)} changed")
            lines.extend(f"  {line}" for line in tally.changed)
        for kind, tally in self.objects.items():
            lines.append(f"{kind}: {tally.checked} checked, {len(tally.changed)} changed")
            lines.extend(f"  {line}" for line in tally.changed)
        lines.append(f"errors: {len(self.errors)}")
        lines.extend(f"  {line}" for line in self.errors)
        return "\n".join(lines)


async def reconcile(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    *,
    now: datetime,
    pending_payment_age: timedelta = timedelta(minutes=10),
    retry_failed: bool = False,
    batch_size: int = 200,
    lookback: timedelta = timedelta(days=14),
) -> ReconcileReport:
    report = ReconcileReport()
    if retry_failed:
        report.failed_events_rearmed = await rearm_failed_events(sessionmaker, now=now)
    report.events_attempted = await process_due_events(sessionmaker, now=now, limit=batch_size)
    run = Pass(sessionmaker, gateway, report.errors, now, batch_size)
    age, tallies = pending_payment_age, report.objects
    await _reconcile_payments(run, report.payments, age=age)
    await paths.reconcile_checkout_sessions(run, tallies["checkout_sessions"], age=age)
    await paths.reconcile_refunds(run, tallies["refunds"], age=age)
    await paths.reconcile_transfers(run, tallies["transfers"], age=age)
    await paths.reconcile_reversals(run, tallies["reversals"], age=age)
    await paths.reconcile_disputes(run, tallies["disputes"], lookback=lookback)
    await _reconcile_vendors(run, report, lookback=lookback)
    return report


async def rearm_failed_events(
    sessionmaker: async_sessionmaker[AsyncSession], *, now: datetime
) -> int:
    """Failed events back to pending, due now, attempts starting again."""
    async with sessionmaker() as session:
        ids = (
            await session.execute(
                select(StripeEvent.id).where(StripeEvent.status == EventStatus.failed)
            )
        ).scalars()
        rearmed = 0
        for event_id in list(ids):
            moved = await transition(
                session, event_id, EventStatus.pending, attempts=0, next_attempt_at=now
            )
            rearmed += moved is not None
        await session.commit()
    return rearmed


async def _reconcile_payments(run: Pass, tally: Tally, *, age: timedelta) -> None:
    """Payments not final `age` after their last status change, and paid ones whose charge is
    not recorded: their current PaymentIntent, else the one of their Checkout Session."""

    async def fetch(row: Row) -> list[Update]:
        intent_id, checkout_intent_id, account = row.values
        # Direct charges live on the connected account: retrieve them with Stripe-Account.
        intent = await run.gateway.retrieve_payment_intent(
            str(intent_id or checkout_intent_id), stripe_account=account
        )
        return [Update("payment_intent", intent)]

    async def apply(session: AsyncSession, row: Row, update: Update, now: datetime) -> None:
        if isinstance(update.object, PaymentIntent):  # always: what `fetch` above retrieved
            await apply_payment_intent(session, update.object, observed_at=now)

    query = select(
        Payment.id,
        Payment.status,
        Payment.stripe_payment_intent_id,
        Payment.checkout_payment_intent_id,
        Payment.stripe_account_id,
    ).where(
        or_(
            Payment.status.in_(UNSETTLED_PAYMENT_STATUSES),
            # Paid (e.g. `checkout.session.completed`) while the PaymentIntent's own event,
            # which carries the charge, was lost: a release needs it.
            (Payment.status == PaymentStatus.succeeded) & Payment.stripe_charge_id.is_(None),
        ),
        Payment.status_updated_at <= run.now - age,
        (Payment.stripe_payment_intent_id.is_not(None))
        | (Payment.checkout_payment_intent_id.is_not(None)),
    )
    await reconcile_kind(
        run,
        tally,
        kind="payment",
        model=Payment,
        query=query,
        fetch=fetch,
        apply=apply,
        order_by=(Payment.status_updated_at,),
    )


async def _mark(run: Pass, kind: str, row_id: uuid.UUID) -> None:
    async with run.sessionmaker() as session:
        await mark_checked(session, kind, row_id, run.now)
        await session.commit()


async def _reconcile_vendors(run: Pass, report: ReconcileReport, *, lookback: timedelta) -> None:
    """Every vendor with a connected account, whatever its status (a missed downgrade of an
    active vendor must not stick), the longest unchecked first: the account, then the payouts
    and disputes of the last `lookback` listed on it."""
    async with run.sessionmaker() as session:
        rows = (
            await session.execute(
                select(Vendor.id, Vendor.status, Vendor.stripe_account_id)
                .outerjoin(ReconcileCheck, last_checked("vendor", Vendor.id))
                .where(Vendor.stripe_account_id.is_not(None), Vendor.deauthorized_at.is_(None))
                .order_by(oldest_checked_first(), Vendor.created_at, Vendor.id)
                .limit(run.limit)
            )
        ).all()
        await session.commit()
    since = int((run.now - lookback).timestamp())
    for vendor_id, status, account_id in rows:
        report.vendors.checked += 1
        account_id = str(account_id)
        try:
            account = await run.gateway.retrieve_account(account_id)
        except ProblemError as exc:
            run.failed(f"vendor {vendor_id}", exc)
            await _mark(run, "vendor", vendor_id)
            continue
        async with run.sessionmaker() as session:
            vendor = await apply_stripe_account(session, account, observed_at=run.now)
            await mark_checked(session, "vendor", vendor_id, run.now)
            await session.commit()
        if vendor is not None and vendor.status is not status:
            report.vendors.changed.append(f"{vendor_id}: {status.value} -> {vendor.status.value}")
        try:
            payouts = await run.gateway.list_payouts(stripe_account=account_id, created_since=since)
            disputes = await run.gateway.list_disputes(
                created_since=since, stripe_account=account_id
            )
        except ProblemError as exc:
            run.failed(f"vendor {vendor_id} payouts/disputes", exc)
            continue
        await paths.apply_payouts(run, payouts, account_id, report.objects["payouts"])
        await paths.apply_unknown_disputes(run, disputes, account_id, report.objects["disputes"])
