"""How workers are started: `marketplace-api worker` (stops cleanly on SIGTERM), the API's
in-process worker on the embedded default, and the schedule of the periodic jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from argparse import Namespace
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api import cli
from marketplace_api.config import get_settings
from marketplace_api.jobs.app import MAINTENANCE_QUEUE, app
from marketplace_api.jobs.enqueue import enqueue
from marketplace_api.main import create_app
from marketplace_api.worker.tasks import SCHEDULES
from tests.conftest import make_settings
from tests.jobs.conftest import eventually, full_name, jobs_rows

ROOT = Path(__file__).resolve().parents[2]


async def _workers(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(text("SELECT count(*) FROM procrastinate_workers"))).scalar_one()
        )


async def test_worker_command_runs_jobs_and_stops_on_sigterm(
    queue_engine: AsyncEngine, database_url: str
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "STRIPE_SECRET_KEY": "",
        "ENVIRONMENT": "test",
        "LOG_FORMAT": "text",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "marketplace_api.cli",
        "worker",
        "--concurrency",
        "2",
        "--name",
        "cli-test",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with AsyncSession(queue_engine) as session:
            job_id = await enqueue(
                session,
                "builtin:procrastinate.builtin_tasks.remove_old_jobs",
                args={"max_hours": 10_000},
            )
            await session.commit()

        async def done() -> bool:
            rows = [j for j in await jobs_rows(queue_engine) if j["id"] == job_id]
            return rows[0]["status"] == "succeeded"

        await eventually(done, within=30)
        assert await _workers(queue_engine) == 1
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0, output.decode()
    assert "job worker stopped" in output.decode()
    # A graceful stop unregisters the worker.
    assert await _workers(queue_engine) == 0


async def test_api_runs_an_in_process_worker_when_asked(
    queue_engine: AsyncEngine, committed_user: uuid.UUID, database_url: str
) -> None:
    settings = make_settings(database_url, stripe_secret_key=None, run_worker_in_process=True)
    api = create_app(settings)
    async with api.router.lifespan_context(api):
        async with AsyncSession(queue_engine) as session:
            await enqueue(
                session,
                "tests.set_full_name",
                args={"user_id": str(committed_user), "value": "in-process"},
            )
            await session.commit()

        async def done() -> bool:
            return await full_name(queue_engine, committed_user) == "in-process"

        await eventually(done)
        assert await _workers(queue_engine) == 1
    # Shutting the API down stops its worker.
    assert await _workers(queue_engine) == 0


async def test_api_runs_no_worker_by_default(
    queue_engine: AsyncEngine, committed_user: uuid.UUID, database_url: str
) -> None:
    settings = make_settings(database_url, stripe_secret_key=None)
    assert settings.run_worker_in_process is False
    api = create_app(settings)
    async with api.router.lifespan_context(api):
        await asyncio.sleep(0.5)
        assert await _workers(queue_engine) == 0


@pytest.mark.parametrize(
    ("database_url", "no_worker", "expected"),
    [
        (None, False, "true"),  # embedded default: the one-command setup runs the jobs too
        (None, True, "false"),
        ("postgresql+asyncpg://db.example/marketplace", False, "false"),  # production
    ],
)
def test_serve_turns_the_in_process_worker_on_only_on_the_embedded_database(
    monkeypatch: pytest.MonkeyPatch, database_url: str | None, no_worker: bool, expected: str
) -> None:
    import uvicorn

    monkeypatch.setenv("RUN_WORKER_IN_PROCESS", "false")
    # Not the development default: serve would choose the Stripe simulator and say so in the
    # process environment, for the rest of the test run.
    monkeypatch.setenv("ENVIRONMENT", "test")
    if database_url:
        monkeypatch.setenv("DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(cli, "_use_resolved_database_url", lambda: "postgresql+asyncpg://x/y")
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    get_settings.cache_clear()
    try:
        args = Namespace(
            host="127.0.0.1", port=0, workers=1, reload=False, no_migrate=True, no_worker=no_worker
        )
        assert cli.cmd_serve(args) == 0
        assert os.environ["RUN_WORKER_IN_PROCESS"] == expected
    finally:
        get_settings.cache_clear()


def test_periodic_jobs_are_scheduled_once_per_tick() -> None:
    registered = {
        name: periodic for (name, _), periodic in app.periodic_registry.periodic_tasks.items()
    }
    assert {name: p.cron for name, p in registered.items()} == SCHEDULES
    assert SCHEDULES["expire_reservations"] == "* * * * *"
    assert SCHEDULES["process_due_webhook_events"] == "* * * * *"
    assert SCHEDULES["reconcile"] == "*/10 * * * *"
    for name, periodic in registered.items():
        task = periodic.task
        # At most one queued and one running at a time, on the maintenance queue.
        assert (task.queueing_lock, task.lock, task.queue) == (name, name, MAINTENANCE_QUEUE)
