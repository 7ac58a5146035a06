"""PostgreSQL restarts under a running API and job worker: requests answer 503 with Retry-After
while it is down, then succeed on their own; jobs deferred after the restart run without anyone
restarting the worker — the standalone one (`marketplace-api worker`) and the API's in-process one
(`marketplace-api serve` on the embedded database) alike.

The database is a throwaway server of this test (own port and data directory), stopped with
`pg_ctl -m fast` (every session ended, as in a restart or failover) and started again. Whether
procrastinate's worker notices the outage (and is restarted by `run_worker`, see
`test_worker_supervisor.py`) or rides it out depends on when it next talks to the database; either
way the job deferred after the restart must run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import uvicorn
from procrastinate import JobContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from marketplace_api import migrations
from marketplace_api.accounts.models import Role, User
from marketplace_api.jobs.app import app as jobs_app
from marketplace_api.jobs.context import jobs_context
from marketplace_api.jobs.enqueue import enqueue
from marketplace_api.main import create_app
from marketplace_api.worker.runner import run_worker
from tests.conftest import make_settings
from tests.reliability.processes import free_port
from tests.reliability.throwaway_pg import ThrowawayPostgres


@jobs_app.task(name="tests.reliability.stamp", pass_context=True)
async def stamp(context: JobContext, user_id: str, value: str) -> None:
    async with jobs_context(context).sessionmaker() as session:
        await session.execute(
            text("UPDATE users SET full_name = :value WHERE id = :id"),
            {"value": value, "id": uuid.UUID(user_id)},
        )
        await session.commit()


async def eventually(check: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


@pytest.fixture
async def postgres() -> AsyncIterator[ThrowawayPostgres]:
    server = await asyncio.to_thread(ThrowawayPostgres.create)
    try:
        await asyncio.to_thread(server.start)
        yield server
    finally:
        await asyncio.to_thread(server.destroy)


@contextlib.asynccontextmanager
async def serving(app: object) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,  # type: ignore[arg-type]
            host="127.0.0.1",
            port=port,
            log_config=None,
            log_level="critical",
            lifespan="on",
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started), within=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def _full_name(engine: AsyncEngine, user_id: uuid.UUID) -> str | None:
    try:
        async with engine.connect() as conn:
            value = await conn.scalar(
                text("SELECT full_name FROM users WHERE id = :id"), {"id": user_id}
            )
    except OSError:
        return None
    return str(value) if value is not None else None


async def _defer_stamp(engine: AsyncEngine, user_id: uuid.UUID, value: str) -> None:
    async with AsyncSession(engine) as session:
        await enqueue(
            session, "tests.reliability.stamp", args={"user_id": str(user_id), "value": value}
        )
        await session.commit()


OUTAGE = 2.0  # seconds the database stays down


@pytest.mark.parametrize("worker_kind", ["standalone", "in_process"])
async def test_api_and_worker_ride_out_a_database_restart(
    postgres: ThrowawayPostgres, worker_kind: str
) -> None:
    url = postgres.url()
    db = create_async_engine(url, poolclass=NullPool)  # the test's own, fresh connections
    async with db.begin() as conn:
        await migrations.upgrade(conn, "head")
    async with AsyncSession(db, expire_on_commit=False) as session:
        user = User(email="restart@example.com", password_hash="x", role=Role.buyer)
        session.add(user)
        await session.commit()
    settings = make_settings(
        url, rate_limit_enabled=False, run_worker_in_process=worker_kind == "in_process"
    )

    standalone = (
        asyncio.create_task(
            run_worker(
                settings,
                url,
                install_signal_handlers=False,
                run_periodic=False,
                fetch_job_polling_interval=0.5,
            )
        )
        if worker_kind == "standalone"
        else None
    )
    try:
        async with (
            serving(create_app(settings)) as base,
            httpx.AsyncClient(base_url=base, timeout=10) as http,
        ):
            assert (await http.get("/v1/platform/listings")).status_code == 200
            await _defer_stamp(db, user.id, "before")
            await eventually(lambda: _is(db, user.id, "before"), within=30)

            await asyncio.to_thread(postgres.stop)
            down = [
                await http.post(
                    "/v1/auth/token", data={"username": "restart@example.com", "password": "x"}
                )
            ]
            # An outage long enough for the worker to notice (its next poll fails).
            outage_ends = time.monotonic() + OUTAGE
            while time.monotonic() < outage_ends:
                down.append(await http.get("/v1/platform/listings"))
                await asyncio.sleep(0.2)
            await asyncio.to_thread(postgres.start)

            after: list[httpx.Response] = []

            async def answers() -> bool:
                after.append(await http.get("/v1/platform/listings"))
                return after[-1].status_code == 200

            await eventually(answers, within=30)
            await _defer_stamp(db, user.id, "after")
            await eventually(lambda: _is(db, user.id, "after"), within=60)
            assert standalone is None or not standalone.done()
    finally:
        if standalone is not None:
            standalone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await standalone
        await db.dispose()

    for response in down + after[:-1]:
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "database_unavailable"
        assert response.headers["Retry-After"] == "2"
    # The pool discards the connections the restart killed by itself: at most one failed
    # request per pooled connection before the first success.
    assert len(after) <= settings.db_pool_size + 1


async def _is(engine: AsyncEngine, user_id: uuid.UUID, value: str) -> bool:
    return await _full_name(engine, user_id) == value
