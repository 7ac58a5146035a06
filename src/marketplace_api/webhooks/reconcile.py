"""Reconciliation: pull authoritative state from Stripe for whatever webhooks left behind.

A lost or never-subscribed webhook must not leave a payment stuck. `reconcile` (run by
`marketplace-api reconcile` and periodically by the job runner):

1. retries the stored events that are due (`process_due_events`), and with `retry_failed` puts
   failed events back to pending first;
2. for every payment still not final `pending_payment_age` after its last status change that has a
   PaymentIntent, retrieves the PaymentIntent (with `Stripe-Account` for direct charges) and applies
   it with the same state machine as the webhooks (`apply_payment_intent`, observed now);
3. for every vendor in `onboarding` or `restricted` with a Stripe account, retrieves the account
   and applies it (`apply_stripe_account`).

Each Stripe call happens outside any transaction; each result is applied in its own short one.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.errors import ProblemError
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.state import apply_payment_intent
from marketplace_api.payments.stripe_gateway import StripeGateway
from marketplace_api.vendors.models import Vendor, VendorStatus
from marketplace_api.vendors.service import apply_stripe_account
from marketplace_api.webhooks.dispatch import RetryLater
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.webhooks.pipeline import process_due_events, transition

logger = logging.getLogger(__name__)

UNSETTLED_PAYMENT_STATUSES = (
    PaymentStatus.requires_payment,
    PaymentStatus.requires_action,
    PaymentStatus.processing,
)
UNSETTLED_VENDOR_STATUSES = (VendorStatus.onboarding, VendorStatus.restricted)


@dataclass
class ReconcileReport:
    failed_events_rearmed: int = 0
    events_attempted: int = 0
    payments_checked: int = 0
    payments_changed: list[str] = field(default_factory=list)  # "<id>: <from> -> <to>"
    vendors_checked: int = 0
    vendors_changed: list[str] = field(default_factory=list)
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
            f"errors: {len(self.errors)}",
            *(f"  {line}" for line in self.errors),
        ]
        return "\n".join(lines)


async def reconcile(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    *,
    now: datetime,
    pending_payment_age: timedelta = timedelta(minutes=10),
    retry_failed: bool = False,
    batch_size: int = 200,
) -> ReconcileReport:
    report = ReconcileReport()
    if retry_failed:
        report.failed_events_rearmed = await rearm_failed_events(sessionmaker, now=now)
    report.events_attempted = await process_due_events(sessionmaker, now=now, limit=batch_size)
    await _reconcile_payments(
        sessionmaker, gateway, report, now=now, age=pending_payment_age, limit=batch_size
    )
    await _reconcile_vendors(sessionmaker, gateway, report, now=now, limit=batch_size)
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
                    Payment.status.in_(UNSETTLED_PAYMENT_STATUSES),
                    Payment.status_updated_at <= now - age,
                    (Payment.stripe_payment_intent_id.is_not(None))
                    | (Payment.checkout_payment_intent_id.is_not(None)),
                )
                .order_by(Payment.status_updated_at)
                .limit(limit)
            )
        ).all()
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
            continue
        async with sessionmaker() as session:
            try:
                updated = await apply_payment_intent(session, intent, observed_at=now)
            except RetryLater as exc:
                await session.rollback()
                report.errors.append(f"payment {payment.id}: {exc}")
                continue
            await session.commit()
        if updated is not None and updated.status is not payment.status:
            report.payments_changed.append(
                f"{payment.id}: {payment.status.value} -> {updated.status.value}"
            )


async def _reconcile_vendors(
    sessionmaker: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    report: ReconcileReport,
    *,
    now: datetime,
    limit: int,
) -> None:
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(Vendor.id, Vendor.status, Vendor.stripe_account_id)
                .where(
                    Vendor.status.in_(UNSETTLED_VENDOR_STATUSES),
                    Vendor.stripe_account_id.is_not(None),
                    Vendor.deauthorized_at.is_(None),
                )
                .order_by(Vendor.updated_at)
                .limit(limit)
            )
        ).all()
    for vendor_id, status, account_id in rows:
        report.vendors_checked += 1
        try:
            account = await gateway.retrieve_account(str(account_id))
        except ProblemError as exc:
            report.errors.append(f"vendor {vendor_id}: {exc.code}: {exc.detail or exc.title}")
            continue
        async with sessionmaker() as session:
            vendor = await apply_stripe_account(session, account, observed_at=now)
            await session.commit()
        if vendor is not None and vendor.status is not status:
            report.vendors_changed.append(f"{vendor_id}: {status.value} -> {vendor.status.value}")
