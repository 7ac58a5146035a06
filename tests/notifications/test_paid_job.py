"""A payment's e-mails are written by one job deferred in the webhook's transaction: a duplicate
event sends nothing more, a rerun of the job after a crash sends nothing twice, and a rolled-back
webhook transaction leaves no job behind."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.accounts.models import Role
from marketplace_api.jobs.app import MAINTENANCE_QUEUE
from marketplace_api.jobs.enqueue import enqueue
from marketplace_api.notifications import service
from marketplace_api.notifications.models import Notification
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.webhooks import dispatch
from marketplace_api.webhooks.dispatch import EventContext
from tests.conftest import MakeUser
from tests.fixtures.orders import PlacedOrder, make_vendor, place_order, succeeded_event
from tests.fixtures.stripe import event_body, sign
from tests.notifications.conftest import Drain, SmtpServer, job_rows, mail_settings

TASK = "notify_payment_succeeded"


async def deliver(client: httpx.AsyncClient, evt: dict[str, Any]) -> dict[str, Any]:
    body = event_body(evt)
    response = await client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign(body), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    receipt: dict[str, Any] = response.json()
    return receipt


async def placed_order(engine: AsyncEngine, make_user: MakeUser) -> PlacedOrder:
    buyer = await make_user(Role.buyer)
    async with AsyncSession(engine, expire_on_commit=False) as session:
        vendor, _ = await make_vendor(session)
        return await place_order(session, buyer.user, vendor=vendor)


async def notifications(engine: AsyncEngine) -> list[Notification]:
    async with AsyncSession(engine) as session:
        result = await session.execute(select(Notification).order_by(Notification.kind))
        return list(result.scalars())


def subjects(smtp: SmtpServer) -> list[str]:
    return sorted(str(m["Subject"]) for m in smtp.inbox.messages)


async def test_duplicate_events_send_one_set_of_emails(
    queue_engine: AsyncEngine,
    committed_client: httpx.AsyncClient,
    make_committed_user: MakeUser,
    smtp: SmtpServer,
    drain: Drain,
    database_url: str,
) -> None:
    placed = await placed_order(queue_engine, make_committed_user)
    paid = succeeded_event(placed)

    assert (await deliver(committed_client, paid))["status"] == "processed"
    # Nothing written in the webhook's transaction but the one job.
    assert await notifications(queue_engine) == []
    [job] = await job_rows(queue_engine, TASK)
    assert job["args"] == {"payment_id": str(placed.payment.id)}
    # The same event again, and another event about the same PaymentIntent.
    assert (await deliver(committed_client, paid))["duplicate"] is True
    assert (await deliver(committed_client, succeeded_event(placed)))["status"] == "processed"
    assert len(await job_rows(queue_engine, TASK)) == 1

    await drain(mail_settings(database_url, smtp.url))

    assert subjects(smtp) == ["New paid order: $64.99", "Your receipt: $64.99"]
    assert [m["To"] for m in smtp.inbox.messages if "receipt" in str(m["Subject"])] == [
        placed.buyer_email
    ]
    rows = await notifications(queue_engine)
    # The same dedupe keys as when the webhook wrote them, each with its own send job.
    assert sorted(r.dedupe_key for r in rows) == sorted(
        [
            f"payment:{placed.payment.id}:{placed.buyer_email}:order_paid",
            f"order:{placed.order.id}:{placed.vendor_email}:vendor_new_order",
        ]
    )
    assert None not in [r.job_id for r in rows]
    assert [j["status"] for j in await job_rows(queue_engine, TASK)] == ["succeeded"]


async def test_job_failing_before_its_commit_is_retried_and_sends_once(
    queue_engine: AsyncEngine,
    committed_client: httpx.AsyncClient,
    make_committed_user: MakeUser,
    smtp: SmtpServer,
    drain: Drain,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    placed = await placed_order(queue_engine, make_committed_user)
    await deliver(committed_client, succeeded_event(placed))
    real_enqueue_many = service.enqueue_many
    calls = 0

    async def crash_once(*args: Any, **kwargs: Any) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:  # the notification rows are inserted, their send jobs not yet
            raise ConnectionResetError("database connection lost")
        return await real_enqueue_many(*args, **kwargs)

    monkeypatch.setattr(service, "enqueue_many", crash_once)
    settings = mail_settings(database_url, smtp.url)

    await drain(settings)
    assert smtp.inbox.messages == []
    assert await notifications(queue_engine) == []  # rolled back with the failed attempt
    [job] = await job_rows(queue_engine, TASK)
    assert (job["status"], job["attempts"]) == ("todo", 1)  # retried later, not lost

    async with queue_engine.begin() as conn:
        await conn.execute(
            text("UPDATE procrastinate_jobs SET scheduled_at = now() WHERE id = :id"),
            {"id": job["id"]},
        )
    await drain(settings)

    assert subjects(smtp) == ["New paid order: $64.99", "Your receipt: $64.99"]
    assert len(await notifications(queue_engine)) == 2


async def test_job_run_again_after_its_commit_sends_nothing_twice(
    queue_engine: AsyncEngine,
    committed_client: httpx.AsyncClient,
    make_committed_user: MakeUser,
    smtp: SmtpServer,
    drain: Drain,
    database_url: str,
) -> None:
    placed = await placed_order(queue_engine, make_committed_user)
    await deliver(committed_client, succeeded_event(placed))
    settings = mail_settings(database_url, smtp.url)
    await drain(settings)
    assert len(smtp.inbox.messages) == 2
    [job] = await job_rows(queue_engine, TASK)

    # Its worker died after the job's commit, before recording that the job had ended: the job is
    # still `doing` and the stalled-jobs job puts it back in the queue.
    async with queue_engine.begin() as conn:
        dead = (
            await conn.execute(
                text(
                    "INSERT INTO procrastinate_workers (last_heartbeat) "
                    "VALUES (now() - interval '10 minutes') RETURNING id"
                )
            )
        ).scalar_one()
        await conn.execute(
            text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w WHERE id = :id"),
            {"w": dead, "id": job["id"]},
        )
    async with AsyncSession(queue_engine) as session:
        await enqueue(session, "retry_stalled_jobs", queue=MAINTENANCE_QUEUE, args={"timestamp": 0})
        await session.commit()
    await drain(settings)

    [again] = await job_rows(queue_engine, TASK)
    assert again["status"] == "succeeded"
    assert again["attempts"] > job["attempts"]  # it ran a second time
    assert len(smtp.inbox.messages) == 2
    assert len(await notifications(queue_engine)) == 2
    assert len(await job_rows(queue_engine)) == 2  # the two send jobs, no more


async def test_rolled_back_webhook_transaction_defers_no_job(
    queue_engine: AsyncEngine,
    committed_client: httpx.AsyncClient,
    make_committed_user: MakeUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    placed = await placed_order(queue_engine, make_committed_user)
    handler = dispatch.load_handlers()["payment_intent.succeeded"]

    async def fails_after_applying(session: AsyncSession, ctx: EventContext) -> None:
        await handler(session, ctx)  # the payment succeeded and the job was deferred …
        raise RuntimeError("… then the transaction failed")

    monkeypatch.setitem(dispatch.HANDLERS, "payment_intent.succeeded", fails_after_applying)
    assert (await deliver(committed_client, succeeded_event(placed)))["status"] == "pending"

    assert await job_rows(queue_engine, TASK) == []
    assert await notifications(queue_engine) == []
    async with AsyncSession(queue_engine) as session:
        payment = await session.get(Payment, placed.payment.id)
        assert payment is not None
        assert payment.status is PaymentStatus.requires_payment
