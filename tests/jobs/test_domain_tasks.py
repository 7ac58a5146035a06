"""The periodic jobs, run by the real worker, call their domain functions correctly: each job
below is deferred as the periodic deferrer would (with its tick's `timestamp`) and drained."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.idempotency.models import IdempotencyKey
from marketplace_api.jobs.app import MAINTENANCE_QUEUE
from marketplace_api.jobs.enqueue import enqueue
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.worker.runner import run_worker
from tests.conftest import make_settings
from tests.fixtures.stripe import form, ok
from tests.jobs.conftest import jobs_rows


async def _run_periodic_job(engine: AsyncEngine, database_url: str, task: str) -> dict[str, object]:
    """Defer `task` like its tick would, run a worker (Stripe configured, mocked by the test)
    until the queue is empty, and return the job's row."""
    async with AsyncSession(engine) as session:
        job_id = await enqueue(session, task, queue=MAINTENANCE_QUEUE, args={"timestamp": 0})
        await session.commit()
    await asyncio.wait_for(
        run_worker(
            make_settings(database_url),
            database_url,
            wait=False,
            install_signal_handlers=False,
            run_periodic=False,
        ),
        timeout=30,
    )
    [job] = [j for j in await jobs_rows(engine) if j["id"] == job_id]
    return job


def _payment(buyer_id: uuid.UUID, *, expires_at: datetime) -> Payment:
    return Payment(
        buyer_id=buyer_id,
        charge_type=ChargeType.destination,
        currency="usd",
        amount=2500,
        platform_fee=250,
        stripe_payment_intent_id=f"pi_{uuid.uuid4().hex[:24]}",
        reservation_expires_at=expires_at,
    )


async def test_expire_reservations_job_cancels_abandoned_payments(
    queue_engine: AsyncEngine,
    committed_user: uuid.UUID,
    database_url: str,
    stripe_api: respx.MockRouter,
) -> None:
    now = datetime.now(UTC)
    async with AsyncSession(queue_engine, expire_on_commit=False) as session:
        abandoned = _payment(committed_user, expires_at=now - timedelta(minutes=1))
        still_held = _payment(committed_user, expires_at=now + timedelta(minutes=10))
        session.add_all([abandoned, still_held])
        await session.commit()
    cancel = stripe_api.post(f"/v1/payment_intents/{abandoned.stripe_payment_intent_id}/cancel")
    cancel.mock(
        return_value=ok(
            {
                "id": abandoned.stripe_payment_intent_id,
                "object": "payment_intent",
                "status": "canceled",
                "amount": abandoned.amount,
                "currency": abandoned.currency,
            }
        )
    )

    job = await _run_periodic_job(queue_engine, database_url, "expire_reservations")

    assert job["status"] == "succeeded"
    assert cancel.call_count == 1
    request = cancel.calls.last.request
    assert form(request) == {"cancellation_reason": "abandoned"}
    assert request.headers["Idempotency-Key"] == f"payment:{abandoned.id}:cancel"
    async with AsyncSession(queue_engine) as session:
        rows = (await session.execute(select(Payment.id, Payment.status))).all()
    statuses = dict(rows)
    assert statuses == {
        abandoned.id: PaymentStatus.expired,
        still_held.id: PaymentStatus.requires_payment,
    }


async def test_reconcile_job_applies_due_events(
    queue_engine: AsyncEngine, database_url: str, stripe_api: respx.MockRouter
) -> None:
    event_id = f"evt_{uuid.uuid4().hex}"
    async with AsyncSession(queue_engine) as session:
        session.add(
            StripeEvent(
                id=event_id,
                type="tests.type_nobody_handles",
                livemode=False,
                created=datetime.now(UTC),
                payload={"id": event_id, "type": "tests.type_nobody_handles"},
            )
        )
        await session.commit()

    job = await _run_periodic_job(queue_engine, database_url, "reconcile")

    assert job["status"] == "succeeded"
    async with AsyncSession(queue_engine) as session:
        event = await session.get(StripeEvent, event_id)
        assert event is not None
        assert event.status is EventStatus.ignored
    # Nothing else to compare: no payment or vendor, so no call to Stripe.
    assert stripe_api.calls.call_count == 0


@pytest.mark.usefixtures("stripe_api")
async def test_prune_idempotency_keys_job_deletes_only_expired_keys(
    queue_engine: AsyncEngine, committed_user: uuid.UUID, database_url: str
) -> None:
    now = datetime.now(UTC)

    def key(name: str, created_at: datetime) -> IdempotencyKey:
        return IdempotencyKey(
            user_id=committed_user,
            key=name,
            request_method="POST",
            request_path="/v1/buyer/checkout",
            request_hash="0" * 64,
            created_at=created_at,
            expires_at=created_at + timedelta(hours=24),
        )

    async with AsyncSession(queue_engine) as session:
        session.add_all([key("old", now - timedelta(days=3)), key("fresh", now)])
        await session.commit()

    job = await _run_periodic_job(queue_engine, database_url, "prune_idempotency_keys")

    assert job["status"] == "succeeded"
    async with AsyncSession(queue_engine) as session:
        kept = (await session.execute(select(IdempotencyKey.key))).scalars().all()
    assert kept == ["fresh"]


@pytest.mark.parametrize(
    "task", ["auto_release", "retry_pending_transfers", "retry_failed_refunds"]
)
async def test_money_jobs_run_their_domain_function(
    queue_engine: AsyncEngine,
    database_url: str,
    stripe_api: respx.MockRouter,
    task: str,
) -> None:
    """Wiring: the job calls its function with the worker's sessionmaker, gateway, `now` and
    settings (a wrong signature fails the job). Nothing is due, so nothing reaches Stripe; the
    functions' behaviour is tested with their domains."""
    job = await _run_periodic_job(queue_engine, database_url, task)

    assert job["status"] == "succeeded"
    assert stripe_api.calls.call_count == 0
