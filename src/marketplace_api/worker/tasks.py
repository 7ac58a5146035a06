"""The background jobs. Each task is a thin shell around one domain function.

Periodic jobs run once per tick however many workers are running:

* procrastinate defers a periodic job through `procrastinate_defer_periodic_job_v2`, which
  inserts `(task_name, periodic_id, defer_timestamp)` under a unique constraint: every worker's
  deferrer tries, exactly one job is created per tick;
* `queueing_lock=<task>`: at most one job of the task waits in the queue (a tick that finds the
  previous one still queued is skipped, not piled up);
* `lock=<task>`: at most one runs at a time (a slow run delays the next one instead of
  overlapping it).

The domain functions themselves are also safe to run concurrently (row locks / conditional
updates); these locks only keep the work from being done twice for nothing.

Periodic jobs have no retry strategy: the next tick is the retry.

`notify_payment_succeeded` is not periodic: a payment's success defers it, in the transaction
that records the success, to write and send that payment's e-mails.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from procrastinate import JobContext

from marketplace_api.idempotency.service import prune_idempotency_keys as prune_keys
from marketplace_api.jobs.app import MAINTENANCE_QUEUE, app
from marketplace_api.jobs.context import jobs_context
from marketplace_api.notifications.notify import notify_operator
from marketplace_api.notifications.tasks import MAX_RETRIES as NOTIFICATION_MAX_RETRIES
from marketplace_api.notifications.tasks import RETRY as NOTIFICATION_RETRY
from marketplace_api.payments.notices import notify_order_paid
from marketplace_api.payments.service import expire_reservations as expire
from marketplace_api.payments.state import NOTIFY_SUCCEEDED_TASK
from marketplace_api.reconcile.service import reconcile as reconcile_with_stripe
from marketplace_api.refunds.service import retry_failed_refunds as retry_refunds
from marketplace_api.release.jobs import release_due_orders
from marketplace_api.release.jobs import retry_pending_transfers as retry_transfers
from marketplace_api.webhooks.pipeline import process_due_events
from marketplace_api.worker.retention import prune_history as prune_old_history

logger = logging.getLogger(__name__)

# How long finished (succeeded or cancelled) jobs stay in procrastinate_jobs for inspection.
FINISHED_JOBS_RETENTION_HOURS = 7 * 24

# name -> cron, for the README and the tests.
SCHEDULES: dict[str, str] = {
    "expire_reservations": "* * * * *",
    "process_due_webhook_events": "* * * * *",
    "reconcile": "*/10 * * * *",
    "prune_idempotency_keys": "17 3 * * *",
    "prune_finished_jobs": "47 3 * * *",
    "retry_stalled_jobs": "* * * * *",
    "auto_release": "*/15 * * * *",
    "retry_pending_transfers": "* * * * *",
    "retry_failed_refunds": "* * * * *",
    "prune_history": "27 4 * * *",
}

# A worker that has not sent a heartbeat for this long is dead (it sends one every 10 s).
STALLED_WORKER_SECONDS = 60

MoneyJob = Callable[..., Awaitable[int]]

# Money movements after the payment, all `(sessionmaker, gateway, *, now, settings)`, idempotent
# and safe on several workers at once.
MONEY_JOBS: dict[str, MoneyJob] = {
    "auto_release": release_due_orders,
    "retry_pending_transfers": retry_transfers,
    "retry_failed_refunds": retry_refunds,
}

PeriodicJob = Callable[[JobContext, int], Awaitable[None]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def maintenance_job(name: str) -> Callable[[PeriodicJob], Any]:
    """Register a periodic task on the maintenance queue at its `SCHEDULES` cron, with the
    one-queued, one-running locks described above."""

    def register(function: PeriodicJob) -> Any:
        task = app.task(
            name=name,
            queue=MAINTENANCE_QUEUE,
            queueing_lock=name,
            lock=name,
            pass_context=True,
        )(function)
        return app.periodic(cron=SCHEDULES[name])(task)

    return register


@maintenance_job("expire_reservations")
async def expire_reservations(context: JobContext, timestamp: int) -> None:
    """Cancel the PaymentIntent of unpaid reservations past their TTL and release their stock."""
    jobs = jobs_context(context)
    if jobs.stripe is None:
        logger.warning("expire_reservations skipped: STRIPE_SECRET_KEY is not set")
        return
    async with jobs.sessionmaker() as session:
        expired = await expire(session, jobs.stripe, now=_utcnow())
    logger.info("expired reservations", extra={"count": expired, "tick": timestamp})


@maintenance_job("process_due_webhook_events")
async def process_due_webhook_events(context: JobContext, timestamp: int) -> None:
    """Apply stored Stripe events that are due (new, or waiting to be retried)."""
    jobs = jobs_context(context)
    attempted = await process_due_events(jobs.sessionmaker, limit=100)
    logger.info("processed due webhook events", extra={"count": attempted, "tick": timestamp})


@maintenance_job("reconcile")
async def reconcile(context: JobContext, timestamp: int) -> None:
    """Compare our payments and events with Stripe's and repair what a lost webhook left behind."""
    jobs = jobs_context(context)
    if jobs.stripe is None:
        logger.warning("reconcile skipped: STRIPE_SECRET_KEY is not set")
        return
    report = await reconcile_with_stripe(jobs.sessionmaker, jobs.stripe, now=_utcnow())
    logger.info("reconciled with stripe", extra={"report": report.render(), "tick": timestamp})


@maintenance_job("prune_idempotency_keys")
async def prune_idempotency_keys(context: JobContext, timestamp: int) -> None:
    """Delete idempotency keys whose replay window is over."""
    jobs = jobs_context(context)
    async with jobs.sessionmaker() as session:
        # Keys past their replay window (the service clamps the cut-off to its RETENTION).
        deleted = await prune_keys(session, _utcnow())
    logger.info("pruned idempotency keys", extra={"count": deleted, "tick": timestamp})


@maintenance_job("prune_finished_jobs")
async def prune_finished_jobs(context: JobContext, timestamp: int) -> None:
    """Keep the job table small: drop succeeded and cancelled jobs after the retention period.
    Failed jobs stay until an operator looks at them (`procrastinate ... jobs list`)."""
    await context.app.job_manager.delete_old_jobs(
        nb_hours=FINISHED_JOBS_RETENTION_HOURS, include_cancelled=True
    )
    logger.info("pruned finished jobs", extra={"tick": timestamp})


@maintenance_job("prune_history")
async def prune_history(context: JobContext, timestamp: int) -> None:
    """Retention: old processed Stripe events, sent notifications and order status history
    (the RETENTION_* settings), in bounded batches; nothing still needed."""
    jobs = jobs_context(context)
    pruned = await prune_old_history(jobs.sessionmaker, jobs.settings, now=_utcnow())
    logger.info(
        "pruned history",
        extra={
            "stripe_events": pruned.stripe_events,
            "notifications": pruned.notifications,
            "order_events": pruned.order_events,
            "tick": timestamp,
        },
    )


@maintenance_job("retry_stalled_jobs")
async def retry_stalled_jobs(context: JobContext, timestamp: int) -> None:
    """Put back in the queue the jobs of workers that died mid-job (killed, OOM, lost host).

    Without this a job stays `doing` forever, and every later job with the same `lock` (all the
    periodic jobs have one) would wait behind it. Running a job again is safe: every task is
    idempotent (conditional updates, Stripe idempotency keys, notification deduplication)."""
    manager = context.app.job_manager
    stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_WORKER_SECONDS))
    for job in stalled:
        await manager.retry_job(job)
        logger.warning(
            "retrying the job of a dead worker",
            extra={"job_id": job.id, "task": job.task_name, "tick": timestamp},
        )


async def _run_money_job(context: JobContext, name: str, timestamp: int) -> None:
    jobs = jobs_context(context)
    if jobs.stripe is None:
        logger.warning("money job skipped: STRIPE_SECRET_KEY is not set", extra={"job": name})
        return
    count = await MONEY_JOBS[name](
        jobs.sessionmaker, jobs.stripe, now=_utcnow(), settings=jobs.settings
    )
    logger.info("money job done", extra={"job": name, "count": count, "tick": timestamp})


@maintenance_job("auto_release")
async def auto_release(context: JobContext, timestamp: int) -> None:
    """Release held funds (separate charges) AUTO_RELEASE_DAYS after shipping, unless a dispute
    or a refund request is open: one transfer per vendor order."""
    await _run_money_job(context, "auto_release", timestamp)


@maintenance_job("retry_pending_transfers")
async def retry_pending_transfers(context: JobContext, timestamp: int) -> None:
    """Transfers left pending or refused by Stripe whose next attempt is due."""
    await _run_money_job(context, "retry_pending_transfers", timestamp)


@maintenance_job("retry_failed_refunds")
async def retry_failed_refunds(context: JobContext, timestamp: int) -> None:
    """Refunds whose Stripe call did not complete, and pending or refused transfer reversals."""
    await _run_money_job(context, "retry_failed_refunds", timestamp)


@app.task(name=NOTIFY_SUCCEEDED_TASK, pass_context=True, retry=NOTIFICATION_RETRY)
async def notify_payment_succeeded(context: JobContext, payment_id: str) -> None:
    """The buyer's receipt and each vendor's "new paid order" for a payment that succeeded:
    recorded and their send jobs deferred in one transaction. Running it again (a retry after a
    crash, a dead worker's job put back) records nothing new: the e-mails' dedupe keys exist."""
    jobs = jobs_context(context)
    try:
        async with jobs.sessionmaker() as session:
            created = await notify_order_paid(session, uuid.UUID(payment_id))
            await session.commit()
    except Exception:
        # `attempts` counts the failed runs before this one; procrastinate stops at MAX_RETRIES.
        if context.job.attempts >= NOTIFICATION_MAX_RETRIES:
            # The last try: without a word the buyer's receipt and the vendors' notice are lost.
            logger.exception("payment e-mails not recorded", extra={"payment_id": payment_id})
            async with jobs.sessionmaker() as session:
                await notify_operator(
                    session,
                    f"payment_emails_lost:{payment_id}",
                    "A paid order's e-mails could not be recorded",
                    "Recording the receipt and the vendors' new-order e-mails failed on every "
                    "attempt. Run the job again once the cause is fixed "
                    "(docs/operations.md, Jobs).",
                    {"payment_id": payment_id},
                )
                await session.commit()
        raise
    logger.info("payment e-mails recorded", extra={"payment_id": payment_id, "count": created})
