"""A failing job is logged with its traceback but without the values its error quotes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import pytest
from procrastinate import JobContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.jobs.app import app
from marketplace_api.jobs.context import jobs_context
from marketplace_api.jobs.enqueue import enqueue
from tests.jobs.conftest import jobs_rows

ARGON2_HASH = "$argon2id$v=19$m=65536,t=3,p=4$cGxhbnRlZHNhbHQ$cGxhbnRlZGhhc2h2YWx1ZQ"


@app.task(name="tests.fails_on_a_secret", pass_context=True)
async def fails_on_a_secret(context: JobContext, user_id: str) -> None:
    """Reads a user's password hash and fails on it: the database quotes it in its error."""
    async with jobs_context(context).sessionmaker() as session:
        await session.execute(
            text("UPDATE users SET password_hash = :hash WHERE id = :id"),
            {"hash": ARGON2_HASH, "id": uuid.UUID(user_id)},
        )
        await session.execute(text("SELECT CAST(:value AS integer)"), {"value": ARGON2_HASH})


def _everything_logged(records: list[logging.LogRecord]) -> str:
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.extend(repr(value) for value in vars(record).values())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


async def test_a_failing_job_logs_no_value_from_its_error(
    queue_engine: AsyncEngine,
    committed_user: uuid.UUID,
    drain: Callable[[], Awaitable[None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with AsyncSession(queue_engine) as session:
        await enqueue(session, "tests.fails_on_a_secret", args={"user_id": str(committed_user)})
        await session.commit()

    await drain()

    [job] = await jobs_rows(queue_engine, "tests.fails_on_a_secret")
    assert job["status"] == "failed"
    logged = _everything_logged(caplog.records)
    assert "message withheld" in logged  # the failure and its traceback were logged...
    assert "$argon2" not in logged  # ...without the value
