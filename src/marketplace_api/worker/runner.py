"""Running a worker: `marketplace-api worker`, and the API's in-process worker on the embedded
default database (`RUN_WORKER_IN_PROCESS`, set by `marketplace-api serve` when DATABASE_URL is
unset).

A worker opens its own connection pool (procrastinate: fetching jobs, LISTEN for new ones,
periodic deferring) and a `JobsContext` (SQLAlchemy engine, Stripe gateway) that its tasks share,
and closes both when it stops. SIGTERM/SIGINT stop it gracefully: no new job is fetched and the
running ones are awaited (up to `shutdown_graceful_timeout`, then aborted and retried later).

A waiting worker is supervised: procrastinate stops a worker for good when its database
connection is lost (its LISTEN side task fails: "side task listener failed … stopping worker",
or a fetch raises). `run_worker` then reopens the connector and starts it again, after a backoff
of `RESTART_DELAY_MIN` doubling up to `RESTART_DELAY_MAX`, until it is asked to stop — so a
PostgreSQL restart or failover needs no one to restart the worker (nor the API's in-process one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from opentelemetry.trace import SpanKind
from procrastinate import App, JobContext
from procrastinate.app import WorkerOptions
from procrastinate.middleware import AsyncCallNext
from procrastinate.periodic import PeriodicRegistry
from procrastinate.worker import Worker

from marketplace_api import tracing
from marketplace_api.config import Settings
from marketplace_api.jobs.app import app as default_app
from marketplace_api.jobs.app import build_connector
from marketplace_api.jobs.context import CONTEXT_KEY, JobsContext
from marketplace_api.metrics import JOBS
from marketplace_api.observability import install_safe_exception_logging

logger = logging.getLogger(__name__)

# Seconds a stopping worker waits for its running jobs before aborting them.
SHUTDOWN_GRACEFUL_TIMEOUT = 30.0
# Backoff between restarts of a worker that lost its database (seconds).
RESTART_DELAY_MIN = 0.5
RESTART_DELAY_MAX = 15.0
# A worker that ran this long before stopping starts over from the shortest delay.
HEALTHY_RUN = 60.0


async def run_worker(
    settings: Settings,
    database_url: str,
    *,
    concurrency: int = 1,
    queues: Iterable[str] | None = None,
    name: str = "worker",
    wait: bool = True,
    install_signal_handlers: bool = True,
    app: App | None = None,
    fetch_job_polling_interval: float = 5.0,
    run_periodic: bool = True,
) -> None:
    """Run a worker until it is stopped (a signal, or cancelling this coroutine), or with
    `wait=False` until the queues are empty. `run_periodic=False` (tests) leaves the periodic
    jobs alone: this worker only runs what is already queued. A waiting worker that stops on its
    own (lost database) is started again; see the module docstring."""
    app = app or default_app
    # A failing job is logged by procrastinate with its exception: never the values it quotes.
    install_safe_exception_logging()
    tracing.configure()  # OTEL_* variables; before the jobs' engine is created
    options: WorkerOptions = {
        "name": name,
        "concurrency": concurrency,
        "wait": wait,
        # Signals are ours: they must stop the supervisor too, not only one run of the worker.
        "install_signal_handlers": False,
        "shutdown_graceful_timeout": SHUTDOWN_GRACEFUL_TIMEOUT,
        "fetch_job_polling_interval": fetch_job_polling_interval,
        "worker_middleware": [_count_outcome, _trace] if tracing.enabled() else [_count_outcome],
    }
    if queues:  # None means every queue (an empty list would mean none)
        options["queues"] = list(queues)
    jobs = JobsContext.create(settings, database_url, pool_size=concurrency + 1)
    options["additional_context"] = {CONTEXT_KEY: jobs}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    delay = RESTART_DELAY_MIN
    try:
        with _stop_on_signals(stop, enabled=install_signal_handlers):
            while True:
                started = loop.time()
                try:
                    await _run_once(app, database_url, concurrency, options, stop, run_periodic)
                except Exception:
                    if not wait:
                        raise
                    logger.exception("job worker failed", extra={"worker": name})
                if not wait or stop.is_set():
                    return
                if loop.time() - started >= HEALTHY_RUN:
                    delay = RESTART_DELAY_MIN
                logger.warning(
                    "job worker stopped on its own (database lost?); restarting",
                    extra={"worker": name, "delay_seconds": delay},
                )
                # The tasks' pooled connections most likely died with the database's sessions:
                # drop them, so the first jobs after the restart do not fail on them.
                await jobs.engine.dispose()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                    return
                delay = min(delay * 2, RESTART_DELAY_MAX)
    finally:
        await jobs.aclose()
        logger.info("job worker stopped", extra={"worker": name})


async def _run_once(
    app: App,
    database_url: str,
    concurrency: int,
    options: WorkerOptions,
    stop: asyncio.Event,
    run_periodic: bool,
) -> None:
    """One run of procrastinate's worker on a fresh connector, until it ends or `stop` is set
    (then it is cancelled: procrastinate's graceful shutdown)."""
    connector = build_connector(database_url, max_pool_size=concurrency + 3)
    with app.replace_connector(connector), _periodic_jobs(app, enabled=run_periodic):
        async with app.open_async():
            logger.info(
                "job worker starting",
                extra={
                    "worker": options.get("name"),
                    "concurrency": concurrency,
                    "queues": options.get("queues"),
                },
            )
            worker = asyncio.create_task(app.run_worker_async(**options))
            stopping = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                if not worker.done():
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
            if worker.done() and not worker.cancelled():
                worker.result()  # its exception, if it failed


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event, *, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _count_outcome(call_next: AsyncCallNext, context: JobContext, worker: Worker) -> Any:
    """Worker middleware: `marketplace_jobs_total{task, outcome}` for /metrics."""
    task = context.job.task_name
    try:
        result = await call_next()
    except BaseException:
        JOBS.labels(task, "failed").inc()
        raise
    JOBS.labels(task, "succeeded").inc()
    return result


async def _trace(call_next: AsyncCallNext, context: JobContext, worker: Worker) -> Any:
    """Worker middleware (traces on): one span per job run, holding its SQL and Stripe calls."""
    job = context.job
    with tracing.span(
        f"job {job.task_name}",
        kind=SpanKind.CONSUMER,
        attributes={
            "job.id": job.id or 0,
            "job.task": job.task_name,
            "job.queue": job.queue,
            "job.attempt": job.attempts + 1,
        },
    ) as span:
        try:
            result = await call_next()
        except BaseException:
            span.set_attribute("job.outcome", "failed")
            raise
        span.set_attribute("job.outcome", "succeeded")
        return result


@contextlib.contextmanager
def _periodic_jobs(app: App, *, enabled: bool) -> Iterator[None]:
    if enabled:
        yield
        return
    registry = app.periodic_registry
    app.periodic_registry = PeriodicRegistry()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        app.periodic_registry = registry


@contextlib.asynccontextmanager
async def in_process_worker(settings: Settings, database_url: str) -> AsyncIterator[None]:
    """A worker running as a background task of the API process (the embedded default's
    one-command setup). Signals stay with uvicorn; leaving the block stops the worker."""
    task = asyncio.create_task(
        run_worker(
            settings,
            database_url,
            concurrency=settings.worker_concurrency,
            name="in-process",
            install_signal_handlers=False,
        ),
        name="marketplace in-process job worker",
    )
    task.add_done_callback(_log_crash)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("in-process job worker crashed", exc_info=task.exception())
