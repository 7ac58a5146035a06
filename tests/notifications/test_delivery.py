"""Sending through the real queue and a real SMTP server: delivered once, retried with backoff
while SMTP is down (not lost), `failed` after the last attempt, `skipped` when email is off."""

from __future__ import annotations

import logging
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.accounts.models import Role
from marketplace_api.fulfilment.notices import notify_order_shipped
from marketplace_api.notifications import service
from marketplace_api.notifications.models import Notification, NotificationStatus
from marketplace_api.notifications.tasks import MAX_RETRIES
from marketplace_api.payments.notices import notify_order_paid
from tests.conftest import MakeUser
from tests.fixtures.orders import PlacedOrder, place_order
from tests.notifications.conftest import Drain, SmtpServer, job_rows, mail_settings


async def placed_and_notified(engine: AsyncEngine, make_user: MakeUser) -> PlacedOrder:
    """A committed order whose receipt and vendor email are queued (committed)."""
    buyer = await make_user(Role.buyer, email=f"bea-{uuid.uuid4().hex[:6]}@example.com")
    async with AsyncSession(engine, expire_on_commit=False) as session:
        placed = await place_order(session, buyer.user)
        assert await notify_order_paid(session, placed.payment.id) == 2
        await session.commit()
    return placed


async def rows(engine: AsyncEngine) -> list[Notification]:
    async with AsyncSession(engine) as session:
        result = await session.execute(select(Notification).order_by(Notification.kind))
        return list(result.scalars())


async def test_worker_delivers_queued_emails_over_smtp_once(
    queue_engine: AsyncEngine,
    make_committed_user: MakeUser,
    smtp: SmtpServer,
    drain: Drain,
    database_url: str,
) -> None:
    placed = await placed_and_notified(queue_engine, make_committed_user)
    settings = mail_settings(database_url, smtp.url, email_from="Shop <orders@shop.example>")

    await drain(settings)

    receipt = smtp.inbox.to(placed.buyer_email)
    new_order = smtp.inbox.to(placed.vendor_email)
    assert len(receipt) == 1
    assert len(new_order) == 1
    message = receipt[0]
    assert message["From"] == "Shop <orders@shop.example>"
    assert message["Subject"] == "Your receipt: $64.99"
    assert message["X-Marketplace-Notification"] == "order_paid"
    assert message.get_content_type() == "multipart/alternative"
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None
    assert html_part is not None
    assert "2 x Blue mug ($12.50 each): $25.00" in text_part.get_content()
    assert "Sold by Acme Ceramics" in html_part.get_content()
    assert new_order[0]["Subject"] == "New paid order: $64.99"

    notified = await rows(queue_engine)
    assert [(r.status, r.attempts, r.last_error) for r in notified] == [
        (NotificationStatus.sent, 1, None),
        (NotificationStatus.sent, 1, None),
    ]
    assert all(r.sent_at is not None for r in notified)
    # The Message-ID is the notification's id: a re-delivery can be recognised.
    receipt_row = next(r for r in notified if r.kind == "order_paid")
    assert message["Message-ID"] == f"<{receipt_row.id}@shop.example>"
    assert [job["status"] for job in await job_rows(queue_engine)] == ["succeeded", "succeeded"]

    # Nothing is sent twice: the same cause again queues nothing, the worker finds nothing.
    async with AsyncSession(queue_engine) as session:
        assert await notify_order_paid(session, placed.payment.id) == 0
        await session.commit()
    await drain(settings)
    assert len(smtp.inbox.messages) == 2


async def test_smtp_down_is_retried_with_backoff_then_delivered(
    queue_engine: AsyncEngine,
    make_committed_user: MakeUser,
    smtp_down: SmtpServer,
    drain: Drain,
    database_url: str,
) -> None:
    buyer = await make_committed_user(Role.buyer)
    async with AsyncSession(queue_engine, expire_on_commit=False) as session:
        placed = await place_order(session, buyer.user)
        await session.execute(
            text("UPDATE orders SET fulfilment_status = 'shipped' WHERE id = :id"),
            {"id": placed.order.id},
        )
        assert await notify_order_shipped(session, placed.order.id) == 1
        await session.commit()
    settings = mail_settings(database_url, smtp_down.url, smtp_timeout_seconds=2)

    await drain(settings)  # nothing listens: the attempt fails, a retry is scheduled

    [job] = await job_rows(queue_engine)
    assert job["status"] == "todo"
    assert job["attempts"] == 1
    async with queue_engine.connect() as conn:
        wait = await conn.scalar(
            text("SELECT extract(epoch FROM scheduled_at - now()) FROM procrastinate_jobs")
        )
    assert 3 < float(wait) <= 8  # 5 s + 3^1 s after the first failure
    [row] = await rows(queue_engine)
    assert row.status is NotificationStatus.queued
    assert row.attempts == 1
    assert row.last_error is not None
    assert smtp_down.inbox.messages == []

    # SMTP comes back; once the retry is due, the worker delivers it.
    smtp_down.start()
    async with queue_engine.begin() as conn:
        await conn.execute(text("UPDATE procrastinate_jobs SET scheduled_at = now()"))
    await drain(settings)

    [message] = smtp_down.inbox.to(placed.buyer_email)
    assert message["Subject"] == "Your order from Acme Ceramics has shipped"
    [row] = await rows(queue_engine)
    assert (row.status, row.attempts) == (NotificationStatus.sent, 2)
    assert [job["status"] for job in await job_rows(queue_engine)] == ["succeeded"]


async def test_the_last_failed_attempt_marks_the_notification_failed(
    queue_engine: AsyncEngine,
    make_committed_user: MakeUser,
    smtp_down: SmtpServer,
    drain: Drain,
    database_url: str,
) -> None:
    await placed_and_notified(queue_engine, make_committed_user)
    async with queue_engine.begin() as conn:  # as if every earlier attempt had failed
        await conn.execute(text("UPDATE procrastinate_jobs SET attempts = :n"), {"n": MAX_RETRIES})

    await drain(mail_settings(database_url, smtp_down.url, smtp_timeout_seconds=2))

    assert [job["status"] for job in await job_rows(queue_engine)] == ["failed", "failed"]
    notified = await rows(queue_engine)
    assert [r.status for r in notified] == [NotificationStatus.failed] * 2
    assert all(r.last_error for r in notified)


async def test_without_smtp_url_notifications_are_skipped_with_one_log_line(
    queue_engine: AsyncEngine,
    make_committed_user: MakeUser,
    drain: Drain,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "_disabled_logged", False)
    await placed_and_notified(queue_engine, make_committed_user)

    with caplog.at_level(logging.WARNING, logger=service.logger.name):
        await drain(mail_settings(database_url, None))

    notified = await rows(queue_engine)
    assert [(r.status, r.attempts) for r in notified] == [(NotificationStatus.skipped, 0)] * 2
    assert [job["status"] for job in await job_rows(queue_engine)] == ["succeeded", "succeeded"]
    disabled = [r for r in caplog.records if "SMTP_URL is not set" in r.getMessage()]
    assert len(disabled) == 1
