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

Domain functions are imported inside the task bodies: importing this module (the API process
does, to know task names) does not pull in every domain, and a broken domain only fails its job.

Periodic jobs have no retry strategy: the next tick is the retry.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import cast

from procrastinate import JobContext

from marketplace_api.jobs.app import MAINTENANCE_QUEUE, app
from marketplace_api.jobs.context import jobs_context

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

# Money movements after the payment: functions of `transfers.service` and `refunds.service`, all
# `(sessionmaker, gateway, *, now, settings)`, idempotent and safe on several workers at once.
MONEY_JOBS: dict[str, tuple[str, str]] = {
    "auto_release": ("marketplace_api.transfers.jobs", "release_due_orders"),
    "retry_pending_transfers": ("marketplace_api.transfers.jobs", "retry_pending_transfers"),
    "retry_failed_refunds": ("marketplace_api.refunds.service", "retry_failed_refunds"),
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@app.periodic(cron=SCHEDULES["expire_reservations"])
@app.task(
    name="expire_reservations",
    queue=MAINTENANCE_QUEUE,
    queueing_lock="expire_reservations",
    lock="expire_reservations",
    pass_context=True,
)
async def expire_reservations(context: JobContext, timestamp: int) -> None:
    """Cancel the PaymentIntent of unpaid reservations past their TTL and release their stock."""
    jobs = jobs_context(context)
    if jobs.stripe is None:
        logger.warning("expire_reservations skipped: STRIPE_SECRET_KEY is not set")
        return
    from marketplace_api.payments.service import expire_reservations as expire

    async with jobs.sessionmaker() as session:
        expired = await expire(session, jobs.stripe, now=_utcnow())
    logger.info("expired reservations", extra={"count": expired, "tick": timestamp})


@app.periodic(cron=SCHEDULES["process_due_webhook_events"])
@app.task(
    name="process_due_webhook_events",
    queue=MAINTENANCE_QUEUE,
    queueing_lock="process_due_webhook_events",
    lock="process_due_webhook_events",
    pass_context=True,
)
async def process_due_webhook_events(context: JobContext, timestamp: int) -> None:
    """Apply stored Stripe events that are due (new, or waiting to be retried)."""
    from marketplace_api.webhooks.pipeline import process_due_events

    jobs = jobs_context(context)
    attempted = await process_due_events(jobs.sessionmaker, limit=100)
    logger.info("processed due webhook events", extra={"count": attempted, "tick": timestamp})


@app.periodic(cron=SCHEDULES["reconcile"])
@app.task(
    name="reconcile",
    queue=MAINTENANCE_QUEUE,
    queueing_lock="reconcile",
    lock="reconcile",
    pass_context=True,
)
async def reconcile(context: JobContext, timestamp: int) -> None:
    """Compare our payments and events with Stripe's and repair what a lost webhook left behind."""
    jobs = jobs_context(context)
    if jobs.stripe is None:
        logger.warning("reconcile skipped: STRIPE_SECRET_KEY is not set")
        return
    from marketplace_api.webhooks.reconcile import reconcile as run

    report = await run(jobs.sessionmaker, jobs.stripe, now=_utcnow())
    logger.info("reconciled with stripe", extra={"report": report.render(), "tick": timestamp})


@app.periodic(cron=SCHEDULES["prune_idempotency_keys"])
@app.task(
    name="prune_idempotency_keys",
    queue=MAINTENANCE_QUEUE,
    queueing_lock="prune_idempotency_keys",
    lock="prune_idempotency_keys",
    pass_context=True,
)
async def prune_idempotency_keys(context: JobContext, timestamp: int) -> None:
    """Delete idempotency keys whose replay window is over."""
    jobs = jobs_context(context)
    from marketplace_api.idempotency.service import prune_idempotency_keys as prune

    async with jobs.sessionmaker() as session:
        # Keys past their replay window (the service clamps the cut-off to its RETENTION).
        deleted = await prune(session, _utcnow())
    logger.info("pruned idempotency keys", extra={"count": deleted, "tick": timestamp})


@app.periodic(cron=SCHEDULES["prune_finished_jobs"])
@app.task(
    name="prune_finished_jobs",
    queue=MAINTENANCE_QUEUE,
    queueing_lock="prune_finished_jobs",
    lock="prune_finished_jobs",
    pass_context=True,
)
async def prune_finished_jobs(context: JobContext, timestamp: int) -> None:
    """Keep the job table small: drop succeeded and cancelled jobs after the retention period.
    Failed jobs stay until an operator looks at them (`procrastinate ... jobs list`)."""
    await context.app.job_manager.delete_old_jobs(
        nb_hours=FINISHED_JOBS_RETENTION_HOURS, include_cancelled=True
    )
    logger.info("pruned finished jobs", extra={"tick": timestamp})


@app.periodic(cron=SCHEDULES["prune_history"])
@app.task(
    name="prune_history",
    queue=MAINTENANCE_QUEUE,
    queueing_lock="prune_history",
    lock="prune_history",
    pass_context=True,
)
async def prune_history(context: JobContext, timestamp: int) -> None:
    """Retention: old processed Stripe events, sent notifications and order status history
    (the RETENTION_* settings), in bounded batches; nothing still needed."""
    from marketplace_api.jobs.retention import prune_history as prune

    jobs = jobs_context(context)
    pruned = await prune(jobs.sessionmaker, jobs.settings, now=_utcnow())
    logger.info(
        "pruned history",
        extra={
            "stripe_events": pruned.stripe_events,
            "notifications": pruned.notifications,
            "order_events": pruned.order_events,
            "tick": timestamp,
        },
    )


@app.periodic(cron=SCHEDULES["retry_stalled_jobs"])
@app.task(
    name="retry_stalled_jobs",
    queue=MAINTENANCE_QUEUE,
    queueing_lock="retry_stalled_jobs",
    lock="retry_stalled_jobs",
    pass_context=True,
)
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


MoneyJob = Callable[..., Awaitable[int]]


async def _run_money_job(context: JobContext, name: str, timestamp: int) -> None:
    jobs = jobs_context(context)
    if jobs.stripe is None:
        logger.warning("money job skipped: STRIPE_SECRET_KEY is not set", extra={"job": name})
        return
    module, function = MONEY_JOBS[name]
    run = cast(MoneyJob, getattr(importlib.import_module(module), function))
    count = await run(jobs.sessionmaker, jobs.stripe, now=_utcnow(), settings=jobs.settings)
    logger.info("money job done", extra={"job": name, "count": count, "tick": timestamp})


@app.periodic(cron=SCHEDULES["auto_release"])
@app.task(
    name="auto_release",
    queue=MAINTENANCE_QUEUE,
    queueing_lock="auto_release",
    lock="auto_release",
    pass_context=True,
)
async def auto_release(context: JobContext, timestamp: int) -> None:
    """Release held funds (separate charges) AUTO_RELEASE_DAYS after shipping, unless a dispute
    or a refund request is open: one transfer per vendor order."""
    await _run_money_job(context, "auto_release", timestamp)


@app.periodic(cron=SCHEDULES["retry_pending_transfers"])
@app.task(
    name="retry_pending_transfers",
    queue=MAINTENANCE_QUEUE,
    queueing_lock="retry_pending_transfers",
    lock="retry_pending_transfers",
    pass_context=True,
)
async def retry_pending_transfers(context: JobContext, timestamp: int) -> None:
    """Transfers left pending or refused by Stripe whose next attempt is due."""
    await _run_money_job(context, "retry_pending_transfers", timestamp)


@app.periodic(cron=SCHEDULES["retry_failed_refunds"])
@app.task(
    name="retry_failed_refunds",
    queue=MAINTENANCE_QUEUE,
    queueing_lock="retry_failed_refunds",
    lock="retry_failed_refunds",
    pass_context=True,
)
async def retry_failed_refunds(context: JobContext, timestamp: int) -> None:
    """Refunds whose Stripe call did not complete, and pending or refused transfer reversals."""
    await _run_money_job(context, "retry_failed_refunds", timestamp)
