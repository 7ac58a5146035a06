"""The worker runs what was committed, retries per the task's policy, and several workers do a
periodic job once per tick."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from procrastinate import App, JobContext
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.config import Settings
from marketplace_api.jobs.app import MAINTENANCE_QUEUE, build_connector
from marketplace_api.jobs.context import jobs_context
from marketplace_api.jobs.enqueue import enqueue
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.worker.runner import run_worker
from tests.fixtures.jobs import strand_with_dead_worker
from tests.jobs.conftest import full_name, jobs_rows, running

Drain = Callable[[], Awaitable[None]]


def jobs_metric(task: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("marketplace_jobs_total", {"task": task, "outcome": outcome})
    return value or 0.0


async def test_committed_job_is_run_and_rolled_back_one_never(
    queue_engine: AsyncEngine, committed_user: uuid.UUID, drain: Drain
) -> None:
    async with AsyncSession(queue_engine) as session:
        await enqueue(
            session, "tests.set_full_name", args={"user_id": str(committed_user), "value": "rb"}
        )
        await session.rollback()
    async with AsyncSession(queue_engine) as session:
        job_id = await enqueue(
            session, "tests.set_full_name", args={"user_id": str(committed_user), "value": "done"}
        )
        await session.commit()
    succeeded_before = jobs_metric("tests.set_full_name", "succeeded")

    await drain()

    assert await full_name(queue_engine, committed_user) == "done"
    assert jobs_metric("tests.set_full_name", "succeeded") == succeeded_before + 1
    [job] = await jobs_rows(queue_engine)
    assert (job["id"], job["status"], job["attempts"]) == (job_id, "succeeded", 1)


async def test_scheduled_job_waits_for_its_time(
    queue_engine: AsyncEngine, committed_user: uuid.UUID, drain: Drain
) -> None:
    async with AsyncSession(queue_engine) as session:
        await enqueue(
            session,
            "tests.set_full_name",
            args={"user_id": str(committed_user), "value": "later"},
            schedule_at=datetime(2999, 1, 1, tzinfo=UTC),
        )
        await session.commit()

    await drain()

    assert await full_name(queue_engine, committed_user) == "start"
    assert [j["status"] for j in await jobs_rows(queue_engine)] == ["todo"]


async def test_failing_job_is_retried_until_it_succeeds(
    queue_engine: AsyncEngine, committed_user: uuid.UUID, drain: Drain
) -> None:
    async with AsyncSession(queue_engine) as session:
        await enqueue(
            session, "tests.flaky", args={"user_id": str(committed_user), "succeed_on": 3}
        )
        await session.commit()

    await drain()

    assert await full_name(queue_engine, committed_user) == "start,run,run,run"
    [job] = await jobs_rows(queue_engine)
    assert (job["status"], job["attempts"]) == ("succeeded", 3)


async def test_failing_job_gives_up_after_its_retries(
    queue_engine: AsyncEngine, committed_user: uuid.UUID, drain: Drain
) -> None:
    async with AsyncSession(queue_engine) as session:
        await enqueue(session, "tests.always_failing", args={"user_id": str(committed_user)})
        await session.commit()
    failed_before = jobs_metric("tests.always_failing", "failed")

    await drain()

    # RetryStrategy(max_attempts=2): the first run and two retries, then `failed` for good.
    assert await full_name(queue_engine, committed_user) == "start,run,run,run"
    [job] = await jobs_rows(queue_engine)
    assert (job["status"], job["attempts"]) == ("failed", 3)
    # Every failed run is counted for /metrics.
    assert jobs_metric("tests.always_failing", "failed") == failed_before + 3


async def test_process_due_webhook_events_task_applies_pending_events(
    queue_engine: AsyncEngine, drain: Drain
) -> None:
    """The real periodic task, run by the real worker, on the webhooks pipeline."""
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
        # As the periodic deferrer would (it adds the tick's `timestamp`).
        await enqueue(
            session, "process_due_webhook_events", queue=MAINTENANCE_QUEUE, args={"timestamp": 0}
        )
        await session.commit()

    await drain()

    async with AsyncSession(queue_engine) as session:
        event = await session.get(StripeEvent, event_id)
        assert event is not None
        assert event.status is EventStatus.ignored
    assert [j["status"] for j in await jobs_rows(queue_engine)] == ["succeeded"]


def _ticking_app(user_id: uuid.UUID) -> App:
    """An app of its own with a periodic task due every second; the task appends
    `,<tick>@<worker>` to the user's full_name. Built per worker, like two processes would."""
    test_app = App(connector=build_connector("postgresql://unused/unused"))

    @test_app.periodic(cron="* * * * * *")
    @test_app.task(
        name="tests.tick",
        pass_context=True,
        queueing_lock="tests.tick",
        lock="tests.tick",
    )
    async def tick(context: JobContext, timestamp: int) -> None:
        async with jobs_context(context).sessionmaker() as session:
            await session.execute(
                text(
                    "UPDATE users SET full_name = full_name || ',' || :tick || '@' || :worker "
                    "WHERE id = :id"
                ),
                {"tick": str(timestamp), "worker": context.worker_name, "id": user_id},
            )
            await session.commit()

    return test_app


async def test_two_workers_run_a_periodic_job_once_per_tick(
    queue_engine: AsyncEngine,
    committed_user: uuid.UUID,
    worker_settings: Settings,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="procrastinate.periodic")

    def worker(name: str) -> Awaitable[None]:
        return run_worker(
            worker_settings,
            database_url,
            name=name,
            concurrency=2,
            install_signal_handlers=False,
            app=_ticking_app(committed_user),
            fetch_job_polling_interval=0.2,
        )

    async with running(worker("worker-a")), running(worker("worker-b")):
        await asyncio.sleep(4.5)

    runs = (await full_name(queue_engine, committed_user)).split(",")[1:]
    ticks = [run.split("@")[0] for run in runs]
    assert len(ticks) >= 3, runs
    # Each tick's work was done by one worker, once.
    assert [t for t, n in Counter(ticks).items() if n > 1] == []
    # One job per tick although both workers' deferrers tried every tick: the database let one
    # of them defer it and told the other it already was.
    jobs = await jobs_rows(queue_engine, "tests.tick")
    deferred = [str(j["args"]["timestamp"]) for j in jobs]
    assert len(deferred) == len(set(deferred))
    assert set(ticks) == {str(j["args"]["timestamp"]) for j in jobs if j["status"] == "succeeded"}
    actions = Counter(getattr(r, "action", None) for r in caplog.records)
    assert actions["periodic_task_deferred"] >= 3
    assert actions["periodic_task_already_deferred"] >= 2


async def test_jobs_of_a_dead_worker_are_retried_and_unblock_their_lock(
    queue_engine: AsyncEngine, committed_user: uuid.UUID, drain: Drain
) -> None:
    args = {"user_id": str(committed_user), "value": "after-crash"}
    async with AsyncSession(queue_engine) as session:
        stalled = await enqueue(session, "tests.set_full_name", args=args, lock="same")
        waiting = await enqueue(session, "tests.set_full_name", args=args, lock="same")
        await session.commit()
    # A worker fetched `stalled`, then died without a word 10 minutes ago.
    assert stalled is not None
    await strand_with_dead_worker(queue_engine, stalled)

    await drain()
    # Nothing ran: the dead worker's job still holds the lock.
    assert await full_name(queue_engine, committed_user) == "start"
    assert {j["id"]: j["status"] for j in await jobs_rows(queue_engine)} == {
        stalled: "doing",
        waiting: "todo",
    }

    async with AsyncSession(queue_engine) as session:
        await enqueue(session, "retry_stalled_jobs", queue=MAINTENANCE_QUEUE, args={"timestamp": 0})
        await session.commit()
    await drain()

    assert await full_name(queue_engine, committed_user) == "after-crash"
    statuses = {j["id"]: j["status"] for j in await jobs_rows(queue_engine)}
    assert statuses[stalled] == statuses[waiting] == "succeeded"
