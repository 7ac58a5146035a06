"""A newer truth is never dropped: our own retrievals (refresh-status, reconcile) store the moment
they asked with microseconds, Stripe's events carry whole-second `created`. An event of that
same second must still be applied; a truly older one (an earlier second) still changes nothing."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.disputes.models import Dispute
from marketplace_api.disputes.service import apply_dispute
from marketplace_api.integrations.stripe.objects import Dispute as StripeDispute
from marketplace_api.integrations.stripe.objects import PaymentIntent, parse_object
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.payments.state import apply_payment_intent
from marketplace_api.vendors import service as vendors
from marketplace_api.vendors.models import Vendor, VendorStatus
from marketplace_api.webhooks.binding import is_older
from tests.fixtures.accounts import account, active_account, as_account, make_vendor, ts
from tests.fixtures.catalog import payment_intent
from tests.fixtures.money import deliver, dispute_json, make_paid
from tests.fixtures.stripe import event
from tests.webhooks.test_binding import unpaid_payment

T0 = 1_793_000_000
SUB_SECOND = timedelta(milliseconds=700)


@pytest.mark.parametrize(
    ("seconds_later", "applied"),
    [(0, True), (1, True), (-1, False)],
    ids=["same", "newer", "older"],
)
async def test_account_updated_of_the_refresh_second_is_applied(
    client: httpx.AsyncClient, session: AsyncSession, seconds_later: int, applied: bool
) -> None:
    vendor = await make_vendor(session, stripe_account_id="acct_same_second")
    vendor_id = vendor.id
    # refresh-status stored Stripe's answer at T0.700 (when it asked)
    await vendors.apply_stripe_account(
        session, as_account(account("acct_same_second")), observed_at=ts(T0) + SUB_SECOND
    )
    await session.commit()
    snapshot = event(
        "account.updated",
        active_account("acct_same_second", vendor_id=vendor_id),
        account="acct_same_second",
        created=T0 + seconds_later,
    )

    assert (await deliver(client, snapshot, connect=True))["status"] == "processed"

    row = await session.get(Vendor, vendor_id, populate_existing=True)
    assert row is not None
    expected = VendorStatus.active if applied else VendorStatus.onboarding
    assert (row.status, row.charges_enabled) == (expected, applied)


@pytest.mark.parametrize(
    ("seconds_later", "applied"), [(0, True), (-1, False)], ids=["same", "older"]
)
async def test_payment_intent_event_of_the_reconcile_second_is_applied(
    client: httpx.AsyncClient, session: AsyncSession, seconds_later: int, applied: bool
) -> None:
    payment = await unpaid_payment(session, amount=2000)
    payment_id, intent_id = payment.id, payment.stripe_payment_intent_id
    intent = payment_intent(
        amount=2000, intent_id=intent_id, metadata={"payment_id": str(payment_id)}
    )
    # reconcile retrieved it at T0.700: 3-D Secure in progress
    await apply_payment_intent(
        session,
        parse_object(PaymentIntent, intent | {"status": "requires_action"}),
        observed_at=ts(T0) + SUB_SECOND,
    )
    await session.commit()
    processing = event(
        "payment_intent.processing",
        intent | {"status": "processing"},
        created=T0 + seconds_later,
    )

    assert (await deliver(client, processing))["status"] == "processed"

    row = await session.get(Payment, payment_id, populate_existing=True)
    assert row is not None
    expected = PaymentStatus.processing if applied else PaymentStatus.requires_action
    assert row.status is expected


@pytest.mark.parametrize(
    ("seconds_later", "applied"), [(0, True), (-1, False)], ids=["same", "older"]
)
async def test_dispute_event_of_the_same_second_is_applied(
    client: httpx.AsyncClient, session: AsyncSession, seconds_later: int, applied: bool
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    obj = dispute_json(paid, dispute_id="du_same_second")
    # a retrieval of the dispute at T0.700
    dispute = parse_object(StripeDispute, obj)
    await apply_dispute(session, dispute, observed_at=ts(T0) + SUB_SECOND, account=None)
    await session.commit()
    review = event(
        "charge.dispute.updated", obj | {"status": "under_review"}, created=T0 + seconds_later
    )

    assert (await deliver(client, review))["status"] == "processed"

    status = await session.scalar(
        select(Dispute.status).where(Dispute.stripe_dispute_id == "du_same_second")
    )
    assert status == ("under_review" if applied else "needs_response")


def test_is_older_compares_whole_seconds() -> None:
    stored = ts(T0) + SUB_SECOND
    assert not is_older(ts(T0), stored)  # the same second: not older
    assert not is_older(ts(T0 + 1), stored)
    assert is_older(ts(T0 - 1), stored)
    assert not is_older(ts(T0 - 1), None)
