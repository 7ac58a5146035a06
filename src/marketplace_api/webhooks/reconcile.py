"""Reconciliation: pull authoritative state from Stripe for whatever webhooks left behind.

A lost or never-subscribed webhook must not leave any row of ours different from Stripe. One
`reconcile` run (`marketplace-api reconcile`, and the periodic job every 10 minutes):

1. retries the stored events that are due (`process_due_events`), and with `retry_failed` puts
   failed events back to pending first;
2. payments not final `pending_age` after their last status change, and paid ones whose charge
   is not recorded: their PaymentIntent (`Stripe-Account` for direct charges) through
   `apply_payment_intent`;
3. every other object kind that is not settled yet, in `reconcile_objects`: pending refunds,
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
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.state import apply_payment_intent
from marketplace_api.vendors.models import Vendor
from marketplace_api.vendors.service import apply_stripe_account
from marketplace_api.webhooks import reconcile_objects as paths
from marketplace_api.webhooks.checks import (
    ReconcileCheck,
    last_checked,
    mark_checked,
    oldest_checked_first,
)
from marketplace_api.webhooks.dispatch import RetryLater
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
    payments_checked: int = 0
    payments_changed: list[str] = field(default_factory=list)  # "<id>: <from> -> <to>"
    vendors_checked: int = 0
    vendors_changed: list[str] = field(default_factory=list)
    objects: dict[str, paths.Tally] = field(
        default_factory=lambda: {kind: paths.Tally() for kind in OBJECT_KINDS}
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
            f"payments: {self.payments_checked} checked, {len(self.payments_changed)} changed",
            *(f"  {line}" for line in self.payments_changed),
            f"vendors: {self.vendors_checked} checked, {len(self.vendors_changed)} changed",
            *(f"  {line}" for line in self.vendors_changed),
        ]
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
    age, limit = pending_payment_age, batch_size
    await _reconcile_payments(sessionmaker, gateway, report, now=now, age=age, limit=limit)
    tallies, errors = report.objects, report.errors
    await paths.reconcile_checkout_sessions(
        sessionmaker, gateway, tallies["checkout_sessions"], errors, now=now, age=age, limit=limit
    )
    await paths.reconcile_refunds(
        sessionmaker, gateway, tallies["refunds"], errors, now=now, age=age, limit=limit
    )
    await paths.reconcile_transfers(
        sessionmaker, gateway, tallies["transfers"], errors, now=now, age=age, limit=limit
    )
    await paths.reconcile_reversals(
        sessionmaker, gateway, tallies["reversals"], errors, now=now, age=age, limit=limit
    )
    await paths.reconcile_disputes(
        sessionmaker, gateway, tallies["disputes"], errors, now=now, lookback=lookback, limit=limit
    )
    await _reconcile_vendors(
        sessionmaker, gateway, report, now=now, limit=batch_size, lookback=lookback
    )
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


@dataclass(frozen=True, slots=True)
class _PaymentToCheck:
    id: uuid.UUID
    status: PaymentStatus
    intent_id: str
    stripe_account: str | None


async def _reconcile_payments(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    report: ReconcileReport,
    *,
    now: datetime,
    age: timedelta,
    limit: int,
) -> None:
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(
                    Payment.id,
                    Payment.status,
                    Payment.stripe_payment_intent_id,
                    Payment.checkout_payment_intent_id,
                    Payment.stripe_account_id,
                )
                .where(
                    or_(
                        Payment.status.in_(UNSETTLED_PAYMENT_STATUSES),
                        # Paid (e.g. `checkout.session.completed`) while the PaymentIntent's
                        # own event, which carries the charge, was lost: a release needs it.
                        (Payment.status == PaymentStatus.succeeded)
                        & Payment.stripe_charge_id.is_(None),
                    ),
                    Payment.status_updated_at <= now - age,
                    (Payment.stripe_payment_intent_id.is_not(None))
                    | (Payment.checkout_payment_intent_id.is_not(None)),
                )
                .outerjoin(ReconcileCheck, last_checked("payment", Payment.id))
                .order_by(oldest_checked_first(), Payment.status_updated_at, Payment.id)
                .limit(limit)
            )
        ).all()
        await session.commit()
    # The current PaymentIntent, else the one of the Checkout Session.
    to_check = [_PaymentToCheck(r[0], r[1], str(r[2] or r[3]), r[4]) for r in rows]
    for payment in to_check:
        report.payments_checked += 1
        try:
            # Direct charges live on the connected account: retrieve them with Stripe-Account.
            intent = await gateway.retrieve_payment_intent(
                payment.intent_id, stripe_account=payment.stripe_account
            )
        except ProblemError as exc:
            report.errors.append(f"payment {payment.id}: {exc.code}: {exc.detail or exc.title}")
            await _mark(sessionmaker, "payment", payment.id, now)
            continue
        async with sessionmaker() as session:
            try:
                updated = await apply_payment_intent(session, intent, observed_at=now)
            except RetryLater as exc:
                await session.rollback()
                report.errors.append(f"payment {payment.id}: {exc}")
                updated = None
            await mark_checked(session, "payment", payment.id, now)
            await session.commit()
        if updated is not None and updated.status is not payment.status:
            report.payments_changed.append(
                f"{payment.id}: {payment.status.value} -> {updated.status.value}"
            )


async def _mark(
    sessionmaker: async_sessionmaker[AsyncSession], kind: str, row_id: uuid.UUID, now: datetime
) -> None:
    async with sessionmaker() as session:
        await mark_checked(session, kind, row_id, now)
        await session.commit()


async def _reconcile_vendors(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    report: ReconcileReport,
    *,
    now: datetime,
    limit: int,
    lookback: timedelta,
) -> None:
    """Every vendor with a connected account, whatever its status (a missed downgrade of an
    active vendor must not stick), the longest unchecked first: the account, then the payouts
    and disputes of the last `lookback` listed on it."""
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(Vendor.id, Vendor.status, Vendor.stripe_account_id)
                .outerjoin(ReconcileCheck, last_checked("vendor", Vendor.id))
                .where(Vendor.stripe_account_id.is_not(None), Vendor.deauthorized_at.is_(None))
                .order_by(oldest_checked_first(), Vendor.created_at, Vendor.id)
                .limit(limit)
            )
        ).all()
        await session.commit()
    since = int((now - lookback).timestamp())
    for vendor_id, status, account_id in rows:
        report.vendors_checked += 1
        account_id = str(account_id)
        try:
            account = await gateway.retrieve_account(account_id)
        except ProblemError as exc:
            report.errors.append(f"vendor {vendor_id}: {exc.code}: {exc.detail or exc.title}")
            await _mark(sessionmaker, "vendor", vendor_id, now)
            continue
        async with sessionmaker() as session:
            vendor = await apply_stripe_account(session, account, observed_at=now)
            await mark_checked(session, "vendor", vendor_id, now)
            await session.commit()
        if vendor is not None and vendor.status is not status:
            report.vendors_changed.append(f"{vendor_id}: {status.value} -> {vendor.status.value}")
        try:
            payouts = await gateway.list_payouts(stripe_account=account_id, created_since=since)
            disputes = await gateway.list_disputes(created_since=since, stripe_account=account_id)
        except ProblemError as exc:
            report.errors.append(
                f"vendor {vendor_id} payouts/disputes: {exc.code}: {exc.detail or exc.title}"
            )
            continue
        await paths.apply_payouts(
            sessionmaker, payouts, account_id, report.objects["payouts"], now=now
        )
        await paths.apply_unknown_disputes(
            sessionmaker, disputes, account_id, report.objects["disputes"], now=now
        )
