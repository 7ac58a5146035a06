"""With traces on, each job a worker runs is a span holding its SQL, with its outcome."""

from __future__ import annotations

import uuid

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api import tracing
from marketplace_api.jobs.enqueue import enqueue
from tests.fixtures.tracing import descends_from, named
from tests.jobs.conftest import full_name
from tests.jobs.test_worker import Drain


async def test_each_job_run_is_a_span_with_its_sql_and_outcome(
    spans: InMemorySpanExporter, queue_engine: AsyncEngine, committed_user: uuid.UUID, drain: Drain
) -> None:
    async with AsyncSession(queue_engine) as session:
        with tracing.span("enqueuer"):
            ok = await enqueue(
                session, "tests.set_full_name", args={"user_id": str(committed_user), "value": "t"}
            )
        failing = await enqueue(
            session, "tests.always_failing", args={"user_id": str(committed_user)}
        )
        await session.commit()

    await drain()

    assert (await full_name(queue_engine, committed_user)).startswith("t")
    finished = spans.get_finished_spans()
    [job] = named(finished, "job tests.set_full_name")
    assert job.kind is SpanKind.CONSUMER
    assert job.attributes is not None
    assert job.attributes["job.id"] == ok
    assert job.attributes["job.queue"] == "default"
    assert job.attributes["job.outcome"] == "succeeded"
    sql = [s for s in finished if s.attributes and "db.statement" in s.attributes]
    updates = [s for s in sql if str(s.attributes["db.statement"]).startswith("UPDATE users")]
    assert updates
    assert descends_from(updates[0], job, finished)
    # The enqueuing span names the job it queued: the way from a request to its jobs' traces.
    [enqueued] = [e for e in named(finished, "enqueuer")[0].events if e.name == "job.enqueued"]
    assert enqueued.attributes is not None
    assert dict(enqueued.attributes) == {"job.task": "tests.set_full_name", "job.ids": (ok,)}

    runs = named(finished, "job tests.always_failing")
    assert len(runs) == 3  # the first run and the two retries of its strategy
    for run in runs:
        assert run.attributes is not None
        assert run.attributes["job.id"] == failing
        assert run.attributes["job.outcome"] == "failed"
        assert run.status.status_code is StatusCode.ERROR
        assert run.attributes["error.type"] == "RuntimeError"
    assert sorted(r.attributes["job.attempt"] for r in runs if r.attributes) == [1, 2, 3]
