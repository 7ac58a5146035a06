"""Enqueue a job inside the caller's database transaction.

The job row is inserted by procrastinate's own SQL function (`procrastinate_defer_jobs_v1`, the
one `task.defer_async()` uses) on the caller's SQLAlchemy session, so it commits or rolls back
with the state change that caused it: a notification is never sent for a change that was rolled
back, and never lost for one that was committed. Workers are woken by the NOTIFY of the insert
trigger, which PostgreSQL delivers at commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api import tracing
from marketplace_api.jobs.app import DEFAULT_QUEUE, app, task_names

# The partial unique index on `queueing_lock` of jobs in `todo` (procrastinate's schema).
QUEUEING_LOCK_INDEX = "procrastinate_jobs_queueing_lock_idx_v1"

_DEFER = text(
    """
    SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(
        CAST(:queue AS varchar),
        CAST(:task_name AS varchar),
        CAST(:priority AS integer),
        CAST(:lock AS text),
        CAST(:queueing_lock AS text),
        CAST(:args AS jsonb),
        CAST(:scheduled_at AS timestamptz)
    )]::procrastinate_job_to_defer_v1[])) AS id
    """
)


# Several jobs of one task in one round trip; the ids come back in the order of `args`, as
# procrastinate's own `batch_defer_jobs_async` relies on.
_DEFER_MANY = text(
    """
    SELECT unnest(procrastinate_defer_jobs_v1(ARRAY(
        SELECT ROW(
            CAST(:queue AS varchar),
            CAST(:task_name AS varchar),
            CAST(:priority AS integer),
            NULL::text,
            NULL::text,
            job.args,
            NULL::timestamptz
        )::procrastinate_job_to_defer_v1
        FROM unnest(CAST(:args AS jsonb[])) WITH ORDINALITY AS job(args, position)
        ORDER BY job.position
    ))) AS id
    """
)


class UnknownTask(ValueError):
    """The task name is not declared in any module of `jobs.app.TASK_MODULES`."""


def _violated_constraint(exc: IntegrityError) -> str | None:
    """The constraint name asyncpg reports (wrapped twice: SQLAlchemy, then its DBAPI shim)."""
    cause: BaseException | None = exc.orig
    while cause is not None:
        name = getattr(cause, "constraint_name", None)
        if name:
            return str(name)
        cause = cause.__cause__
    return None


async def enqueue(
    session: AsyncSession,
    task_name: str,
    *,
    queue: str = DEFAULT_QUEUE,
    args: dict[str, Any],
    lock: str | None = None,
    queueing_lock: str | None = None,
    schedule_at: datetime | None = None,
    priority: int = 0,
) -> int | None:
    """Add a job to the queue in `session`'s transaction (nothing is committed here).

    `args` are the task's keyword arguments and must be JSON values (pass ids as strings).
    `lock`: jobs sharing it run one at a time, in order. `queueing_lock`: at most one job with it
    waits in the queue; when one already does, nothing is added and None is returned — the
    caller's transaction is untouched (the attempt runs in a savepoint). Returns the job id.
    """
    _check_task(task_name)
    if schedule_at is not None and schedule_at.tzinfo is None:
        raise ValueError("schedule_at must be timezone-aware")
    params = {
        "queue": queue,
        "task_name": task_name,
        "priority": priority,
        "lock": lock,
        "queueing_lock": queueing_lock,
        "args": json.dumps(args),
        "scheduled_at": schedule_at,
    }
    if queueing_lock is None:
        job_id = (await session.execute(_DEFER, params)).scalar_one()
    else:
        try:
            async with session.begin_nested():
                job_id = (await session.execute(_DEFER, params)).scalar_one()
        except IntegrityError as exc:
            if _violated_constraint(exc) == QUEUEING_LOCK_INDEX:
                return None
            raise
    tracing.record_enqueued(task_name, [int(job_id)])
    return int(job_id)


async def enqueue_many(
    session: AsyncSession,
    task_name: str,
    args: Sequence[dict[str, Any]],
    *,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
) -> list[int]:
    """Add one job per element of `args` (no locks, due now) in `session`'s transaction, in one
    round trip. Returns their ids, in the order of `args`."""
    _check_task(task_name)
    if not args:
        return []
    params = {
        "queue": queue,
        "task_name": task_name,
        "priority": priority,
        "args": [json.dumps(a) for a in args],
    }
    ids = [int(job_id) for job_id in (await session.execute(_DEFER_MANY, params)).scalars()]
    tracing.record_enqueued(task_name, ids)
    return ids


def _check_task(task_name: str) -> None:
    if task_name not in app.tasks and task_name not in task_names():  # the first: no imports
        raise UnknownTask(f"no task named {task_name!r} (is its module in TASK_MODULES?)")
