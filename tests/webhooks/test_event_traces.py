"""With traces on, each webhook event delivered or retried is a span: its id, type and outcome,
below the webhook request's span; nothing of the payload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.webhooks.pipeline import process_due_events
from tests.conftest import AuthUser
from tests.fixtures.tracing import descends_from, exported_text, named
from tests.webhooks.conftest import FLAKY, TOUCH_USER, Recorder, deliver, user_event


async def test_delivered_event_is_a_span_with_id_type_and_outcome(
    spans: InMemorySpanExporter, client: httpx.AsyncClient, buyer: AuthUser, recorder: Recorder
) -> None:
    # `spans` comes before `client`: traces must be on when the fixture builds the app.
    evt = user_event(TOUCH_USER, buyer.id)

    first = await deliver(client, evt)
    again = await deliver(client, evt)

    assert first.json()["status"] == again.json()["status"] == "processed"
    finished = spans.get_finished_spans()
    events = named(finished, f"stripe event {TOUCH_USER}")
    assert [dict(s.attributes or {}) for s in events] == [
        {
            "stripe.event.id": evt["id"],
            "stripe.event.type": TOUCH_USER,
            "stripe.event.delivery": "received",
            "stripe.event.outcome": "processed",
            "stripe.event.duplicate": duplicate,
        }
        for duplicate in (False, True)
    ]
    requests = named(finished, "POST /webhooks/stripe")
    assert len(requests) == 2
    for event_span, request in zip(events, requests, strict=True):
        assert descends_from(event_span, request, finished)
    # The payload (here the user's id in metadata) is not exported.
    assert str(buyer.id) not in exported_text(finished)


async def test_retried_event_spans_record_each_attempt_outcome(
    spans: InMemorySpanExporter,
    client: httpx.AsyncClient,
    session: AsyncSession,
    test_sessionmaker: async_sessionmaker[AsyncSession],
    buyer: AuthUser,
    recorder: Recorder,
) -> None:
    recorder.fail_times = 1
    evt = user_event(FLAKY, buyer.id)
    start = datetime.now(UTC)

    assert (await deliver(client, evt)).json()["status"] == "pending"
    assert await process_due_events(test_sessionmaker, now=start + timedelta(minutes=1)) == 1

    [received, retried] = named(spans.get_finished_spans(), f"stripe event {FLAKY}")
    assert received.attributes is not None
    assert retried.attributes is not None
    assert received.attributes["stripe.event.outcome"] == "pending"
    assert (retried.attributes["stripe.event.delivery"], retried.attributes["stripe.event.id"]) == (
        "retried",
        evt["id"],
    )
    assert retried.attributes["stripe.event.outcome"] == "processed"
    assert retried.status.status_code is StatusCode.UNSET
    assert recorder.applied == [evt["id"]]
