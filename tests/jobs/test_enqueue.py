"""`enqueue()` adds the job in the caller's transaction: it commits and rolls back with it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.jobs.enqueue import UnknownTask, enqueue, enqueue_many
from tests.jobs.conftest import full_name, jobs_rows


async def _rename(session: AsyncSession, user_id: uuid.UUID, value: str) -> None:
    await session.execute(
        text("UPDATE users SET full_name = :v WHERE id = :id"), {"v": value, "id": user_id}
    )


async def test_rolled_back_with_the_business_change(
    queue_engine: AsyncEngine, committed_user: uuid.UUID
) -> None:
    async with AsyncSession(queue_engine) as session:
        await _rename(session, committed_user, "renamed")
        job_id = await enqueue(
            session, "tests.set_full_name", args={"user_id": str(committed_user), "value": "x"}
        )
        assert job_id is not None
        # Visible inside the transaction...
        assert (
            await session.execute(text("SELECT count(*) FROM procrastinate_jobs"))
        ).scalar_one() == 1
        await session.rollback()

    # ... gone with it, like the change that caused it.
    assert await jobs_rows(queue_engine) == []
    assert await full_name(queue_engine, committed_user) == "start"


async def test_committed_with_the_business_change(
    queue_engine: AsyncEngine, committed_user: uuid.UUID
) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    async with AsyncSession(queue_engine) as session:
        await _rename(session, committed_user, "renamed")
        job_id = await enqueue(
            session,
            "tests.set_full_name",
            queue="notifications",
            args={"user_id": str(committed_user), "value": "x"},
            lock=f"user:{committed_user}",
            queueing_lock=f"rename:{committed_user}",
            schedule_at=when,
            priority=5,
        )
        await session.commit()

    [job] = await jobs_rows(queue_engine)
    assert job["id"] == job_id
    assert job["task_name"] == "tests.set_full_name"
    assert job["queue_name"] == "notifications"
    assert job["args"] == {"user_id": str(committed_user), "value": "x"}
    assert job["lock"] == f"user:{committed_user}"
    assert job["queueing_lock"] == f"rename:{committed_user}"
    assert job["scheduled_at"] == when
    assert job["priority"] == 5
    assert job["status"] == "todo"
    assert await full_name(queue_engine, committed_user) == "renamed"


async def test_queueing_lock_conflict_returns_none_and_keeps_the_transaction(
    queue_engine: AsyncEngine, committed_user: uuid.UUID
) -> None:
    args = {"user_id": str(committed_user), "value": "x"}
    async with AsyncSession(queue_engine) as session:
        first = await enqueue(session, "tests.set_full_name", args=args, queueing_lock="only-one")
        await session.commit()
    assert first is not None

    async with AsyncSession(queue_engine) as session:
        await _rename(session, committed_user, "before")
        second = await enqueue(session, "tests.set_full_name", args=args, queueing_lock="only-one")
        # The transaction goes on: the failed insert was rolled back to its savepoint only.
        await _rename(session, committed_user, "after")
        other = await enqueue(session, "tests.set_full_name", args=args, queueing_lock="another")
        await session.commit()

    assert second is None
    assert other is not None
    assert [j["id"] for j in await jobs_rows(queue_engine)] == [first, other]
    assert await full_name(queue_engine, committed_user) == "after"


async def test_unknown_task_and_naive_schedule_are_refused(session: AsyncSession) -> None:
    with pytest.raises(UnknownTask):
        await enqueue(session, "tests.no_such_task", args={})
    with pytest.raises(ValueError, match="timezone-aware"):
        await enqueue(
            session,
            "tests.set_full_name",
            args={},
            schedule_at=datetime(2030, 1, 1),  # noqa: DTZ001 - the point of the test
        )


async def test_enqueue_many_adds_one_job_per_args_and_returns_their_ids_in_order(
    queue_engine: AsyncEngine,
) -> None:
    values = [f"v{i}" for i in range(5)]
    async with AsyncSession(queue_engine) as session:
        ids = await enqueue_many(
            session, "tests.set_full_name", [{"user_id": "u", "value": v} for v in values]
        )
        assert await enqueue_many(session, "tests.set_full_name", []) == []
        rows = (
            await session.execute(
                text("SELECT id, args->>'value' AS value FROM procrastinate_jobs ORDER BY id")
            )
        ).all()
        await session.commit()
    assert len(ids) == len(set(ids)) == 5
    assert {row.id: row.value for row in rows} == dict(zip(ids, values, strict=True))


async def test_enqueue_many_refuses_an_unknown_task(session: AsyncSession) -> None:
    with pytest.raises(UnknownTask):
        await enqueue_many(session, "no.such.task", [{}])
