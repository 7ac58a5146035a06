"""notify() and the per-kind functions: rows and send jobs in the caller's transaction, one per
(source, recipient, kind), nothing when the transaction rolls back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import Role
from marketplace_api.disputes.models import Dispute
from marketplace_api.disputes.notices import notify_dispute_opened
from marketplace_api.fulfilment.models import Shipment
from marketplace_api.fulfilment.notices import notify_order_shipped
from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.models import Notification, NotificationStatus
from marketplace_api.notifications.service import Email, dedupe_key, notify, notify_many
from marketplace_api.payments.notices import notify_order_paid
from marketplace_api.refunds.models import Refund, RefundOrigin, RefundReason
from marketplace_api.refunds.notices import notify_refund_issued
from marketplace_api.transfers.models import ReleaseTrigger, Transfer
from marketplace_api.transfers.notices import notify_transfer_failed, notify_transfer_released
from marketplace_api.vendors.notices import notify_payout_failed, notify_requirements_due
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.webhooks.notices import notify_webhook_event_failed
from tests.conftest import MakeUser
from tests.fixtures.orders import PlacedOrder, place_order


async def notifications(session: AsyncSession) -> list[Notification]:
    rows = await session.execute(
        select(Notification)
        .order_by(Notification.kind, Notification.recipient)
        .execution_options(populate_existing=True)
    )
    return list(rows.scalars())


async def send_jobs(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT id, status, args FROM procrastinate_jobs "
            "WHERE task_name = 'send_notification' ORDER BY id"
        )
    )
    return [dict(row) for row in rows.mappings()]


@pytest.fixture
async def placed(session: AsyncSession, make_user: MakeUser) -> PlacedOrder:
    buyer = await make_user(Role.buyer, email="bea@example.com")
    return await place_order(session, buyer.user)


async def test_notify_records_and_enqueues_once_per_dedupe_key(session: AsyncSession) -> None:
    key = dedupe_key("evt_1", "Someone@Example.com", Kind.transfer_released)
    assert key == "evt_1:someone@example.com:transfer_released"
    context = {"vendor_name": "Acme", "amount": 100, "currency": "usd"}

    first = await notify(session, Kind.transfer_released, "someone@example.com", context, key)
    second = await notify(session, Kind.transfer_released, "someone@example.com", context, key)

    assert first is not None
    assert second is None
    rows = await notifications(session)
    assert [(r.id, r.status, r.attempts) for r in rows] == [(first, NotificationStatus.queued, 0)]
    jobs = await send_jobs(session)
    assert len(jobs) == 1
    assert jobs[0]["status"] == "todo"
    args = jobs[0]["args"]
    assert (json.loads(args) if isinstance(args, str) else args) == {"notification_id": str(first)}
    assert rows[0].job_id == jobs[0]["id"]


async def test_nothing_is_recorded_or_enqueued_when_the_change_rolls_back(
    session: AsyncSession, placed: PlacedOrder
) -> None:
    savepoint = await session.begin_nested()
    assert await notify_order_paid(session, placed.payment.id) == 2
    await savepoint.rollback()  # the state change failed
    assert await notifications(session) == []
    assert await send_jobs(session) == []


async def test_order_paid_sends_a_receipt_and_a_new_order_email_once(
    session: AsyncSession, placed: PlacedOrder
) -> None:
    assert await notify_order_paid(session, placed.payment.id) == 2
    assert await notify_order_paid(session, placed.payment.id) == 0  # a replay: nothing new

    receipt, new_order = await notifications(session)
    assert (receipt.kind, receipt.recipient) == ("order_paid", "bea@example.com")
    assert receipt.dedupe_key == f"payment:{placed.payment.id}:bea@example.com:order_paid"
    assert receipt.context["total"] == 6499
    assert receipt.context["orders"][0]["vendor_name"] == "Acme Ceramics"
    assert receipt.context["orders"][0]["items"] == [
        {"title": "Blue mug", "quantity": 2, "unit_amount": 1250, "amount": 2500},
        {"title": "Teapot", "quantity": 1, "unit_amount": 3999, "amount": 3999},
    ]
    assert (new_order.kind, new_order.recipient) == ("vendor_new_order", placed.vendor_email)
    assert new_order.dedupe_key.startswith(f"order:{placed.order.id}:")
    assert (new_order.context["platform_fee"], new_order.context["vendor_amount"]) == (650, 5849)
    assert len(await send_jobs(session)) == 2


async def test_shipped_refund_dispute_transfer_emails_load_their_rows(
    session: AsyncSession, placed: PlacedOrder, make_user: MakeUser
) -> None:
    admin = await make_user(Role.admin)
    now = datetime.now(UTC)
    order = placed.order
    common: dict[str, Any] = {"order_id": order.id, "payment_id": order.payment_id}
    session.add(Shipment(order_id=order.id, carrier="UPS", tracking_number="1Z999", shipped_at=now))
    refund = Refund(
        **common,
        vendor_id=order.vendor_id,
        amount=1000,
        currency="usd",
        vendor_share=900,
        fee_share=100,
        fee_refunded=0,
        reason=RefundReason.requested_by_customer,
        origin=RefundOrigin.vendor,
    )
    transfer = Transfer(
        **common,
        vendor_id=order.vendor_id,
        amount=order.vendor_amount,
        currency="usd",
        destination="acct_1",
        trigger=ReleaseTrigger.buyer,
        attempts=3,
        last_error="insufficient_funds",
    )
    dispute = Dispute(
        stripe_dispute_id="dp_1",
        payment_id=order.payment_id,
        amount=order.amount,
        currency="usd",
        reason="fraudulent",
        status="needs_response",
        evidence_due_by=now + timedelta(days=7),
        orders_before={str(order.id): "paid"},
        stripe_synced_at=now,
    )
    session.add_all([refund, transfer, dispute])  # not flushed: the functions flush first

    assert await notify_order_shipped(session, order.id) == 1
    assert await notify_refund_issued(session, refund.id) == 1
    assert await notify_dispute_opened(session, dispute.id) == 1
    assert await notify_transfer_released(session, transfer.id) == 1
    assert await notify_transfer_failed(session, transfer.id) == 1
    # Each again: nothing new.
    for again in (
        notify_order_shipped(session, order.id),
        notify_refund_issued(session, refund.id),
        notify_dispute_opened(session, dispute.id),
        notify_transfer_released(session, transfer.id),
        notify_transfer_failed(session, transfer.id),
    ):
        assert await again == 0

    by_kind = {row.kind: row for row in await notifications(session)}
    assert by_kind["order_shipped"].recipient == "bea@example.com"
    assert by_kind["order_shipped"].context["tracking_number"] == "1Z999"
    assert by_kind["refund_issued"].recipient == "bea@example.com"
    assert by_kind["refund_issued"].context["amount"] == 1000
    assert by_kind["dispute_opened"].recipient == placed.vendor_email
    assert by_kind["dispute_opened"].context["evidence_due_by"] == (
        dispute.evidence_due_by.isoformat() if dispute.evidence_due_by else None
    )
    assert by_kind["transfer_released"].recipient == placed.vendor_email
    assert by_kind["transfer_failed"].recipient == admin.user.email
    assert by_kind["transfer_failed"].context["error"] == "insufficient_funds"


async def test_vendor_account_and_admin_webhook_emails(
    session: AsyncSession, placed: PlacedOrder, make_user: MakeUser
) -> None:
    admins = [await make_user(Role.admin), await make_user(Role.admin)]
    vendor = placed.vendor
    payout = {
        "id": "po_123",
        "object": "payout",
        "amount": 9900,
        "currency": "usd",
        "failure_code": "account_closed",
        "failure_message": "The bank account has been closed.",
    }
    assert await notify_payout_failed(session, str(vendor.stripe_account_id), payout) == 1
    assert await notify_payout_failed(session, str(vendor.stripe_account_id), payout) == 0
    assert await notify_payout_failed(session, "acct_unknown", payout) == 0

    assert await notify_requirements_due(session, vendor.id) == 0  # nothing due
    vendor.requirements_currently_due = ["external_account", "tos_acceptance.date"]
    deadline = 1796000000
    assert await notify_requirements_due(session, vendor.id, deadline=deadline) == 1
    # The same requirements again (another account.updated): nothing new.
    assert await notify_requirements_due(session, vendor.id, deadline=deadline) == 0

    session.add(
        StripeEvent(
            id="evt_broken",
            type="charge.refunded",
            livemode=False,
            created=datetime.now(UTC),
            payload={},
            status=EventStatus.failed,
            attempts=10,
            last_error="RuntimeError: boom",
        )
    )
    assert await notify_webhook_event_failed(session, "evt_broken") == 2  # every admin
    assert await notify_webhook_event_failed(session, "evt_broken") == 0

    rows = await notifications(session)
    [due_row] = [r for r in rows if r.kind == "requirements_due"]
    assert due_row.context["currently_due"] == ["external_account", "tos_acceptance.date"]
    assert due_row.context["deadline"] == "2026-11-30T00:53:20+00:00"
    assert sorted((r.kind, r.recipient) for r in rows) == sorted(
        [
            ("payout_failed", placed.vendor_email),
            ("requirements_due", placed.vendor_email),
            *[("webhook_event_failed", a.user.email) for a in admins],
        ]
    )
    count = await session.scalar(select(func.count()).select_from(Notification))
    assert count == len(await send_jobs(session)) == 4


async def test_notify_many_records_the_new_ones_and_gives_each_its_own_send_job(
    session: AsyncSession,
) -> None:
    context = {"vendor_name": "Acme", "amount": 100, "currency": "usd"}

    def email(recipient: str) -> Email:
        key = dedupe_key("evt_many", recipient, Kind.transfer_released)
        return Email(Kind.transfer_released, recipient, context, key)

    [already] = await notify_many(session, [email("b@example.com")])
    created = await notify_many(
        session, [email("a@example.com"), email("b@example.com"), email("c@example.com")]
    )

    assert len(created) == 2
    assert already not in created
    rows = {r.id: r for r in await notifications(session)}
    assert [rows[i].recipient for i in created] == ["a@example.com", "c@example.com"]
    jobs = {job["id"]: job for job in await send_jobs(session)}
    assert len(jobs) == 3
    for notification_id, row in rows.items():  # each row names its own job, and that job it
        args = jobs[row.job_id]["args"]
        args = json.loads(args) if isinstance(args, str) else args
        assert args == {"notification_id": str(notification_id)}
    assert await notify_many(session, [email("a@example.com")]) == []  # a replay: nothing new
    assert len(await send_jobs(session)) == 3
