"""Fixtures of the job-queue tests: an empty queue, a committed user to record effects on, tasks
declared for the tests only, and a worker run bounded in time."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from procrastinate import JobContext, RetryStrategy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.accounts.models import Role, User
from marketplace_api.config import Settings
from marketplace_api.jobs.app import app
from marketplace_api.jobs.context import jobs_context
from marketplace_api.worker.runner import run_worker
from tests.conftest import make_settings

PROCRASTINATE_TABLES = (
    "procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs, procrastinate_workers"
)

# --- tasks that exist only in the tests (registered on the real app, like a domain's tasks) ----
# They record their runs in `users.full_name` of a committed user: an existing table whose value
# the test reads back from another connection.


@app.task(name="tests.set_full_name", pass_context=True)
async def set_full_name(context: JobContext, user_id: str, value: str) -> None:
    async with jobs_context(context).sessionmaker() as session:
        await session.execute(
            text("UPDATE users SET full_name = :value WHERE id = :id"),
            {"value": value, "id": uuid.UUID(user_id)},
        )
        await session.commit()


async def _append_run(context: JobContext, user_id: str) -> int:
    """Append ',<attempt>' to the user's full_name; returns how many runs are recorded now."""
    async with jobs_context(context).sessionmaker() as session:
        runs = (
            await session.execute(
                text(
                    "UPDATE users SET full_name = full_name || ',run' WHERE id = :id "
                    "RETURNING full_name"
                ),
                {"id": uuid.UUID(user_id)},
            )
        ).scalar_one()
        await session.commit()
    return str(runs).count(",run")


@app.task(
    name="tests.flaky",
    pass_context=True,
    retry=RetryStrategy(max_attempts=3, wait=0),
)
async def flaky(context: JobContext, user_id: str, succeed_on: int) -> None:
    """Fails until its `succeed_on`-th run."""
    if await _append_run(context, user_id) < succeed_on:
        raise RuntimeError("not yet")


@app.task(
    name="tests.always_failing",
    pass_context=True,
    retry=RetryStrategy(max_attempts=2, wait=0),
)
async def always_failing(context: JobContext, user_id: str) -> None:
    await _append_run(context, user_id)
    raise RuntimeError("always")


# --- fixtures ------------------------------------------------------------------------------------


async def clear_queue(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {PROCRASTINATE_TABLES} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def queue_engine(committed_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """Real commits on separate connections, with an empty job queue before and after."""
    await clear_queue(committed_engine)
    try:
        yield committed_engine
    finally:
        await clear_queue(committed_engine)


@pytest.fixture
def worker_settings(database_url: str) -> Settings:
    # No Stripe key: a stray periodic job could not call Stripe.
    return make_settings(database_url, stripe_secret_key=None)


@pytest.fixture
async def committed_user(queue_engine: AsyncEngine) -> uuid.UUID:
    async with AsyncSession(queue_engine, expire_on_commit=False) as session:
        user = User(
            email=f"jobs-{uuid.uuid4().hex[:10]}@example.com",
            password_hash="x",
            role=Role.buyer,
            full_name="start",
        )
        session.add(user)
        await session.commit()
        return user.id


async def full_name(engine: AsyncEngine, user_id: uuid.UUID) -> str:
    async with engine.connect() as conn:
        value = (
            await conn.execute(text("SELECT full_name FROM users WHERE id = :id"), {"id": user_id})
        ).scalar_one()
    return str(value)


async def jobs_rows(engine: AsyncEngine, task_name: str | None = None) -> list[dict[str, Any]]:
    query = "SELECT * FROM procrastinate_jobs"
    params: dict[str, Any] = {}
    if task_name is not None:
        query += " WHERE task_name = :task"
        params["task"] = task_name
    async with engine.connect() as conn:
        rows = (await conn.execute(text(query + " ORDER BY id"), params)).mappings().all()
    return [dict(row) for row in rows]


RunUntil = Callable[[Callable[[], Awaitable[bool]]], Awaitable[None]]


@pytest.fixture
def drain(worker_settings: Settings, database_url: str) -> Callable[[], Awaitable[None]]:
    """Run the real worker (no periodic jobs) until the queue has nothing due, then stop."""

    async def run() -> None:
        await asyncio.wait_for(
            run_worker(
                worker_settings,
                database_url,
                wait=False,
                install_signal_handlers=False,
                run_periodic=False,
            ),
            timeout=30,
        )

    return run


@contextlib.asynccontextmanager
async def running(coro: Awaitable[None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run a worker coroutine in the background; cancelling it on exit stops it gracefully."""
    task: asyncio.Task[None] = asyncio.ensure_future(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)
