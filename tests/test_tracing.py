"""OpenTelemetry traces: off unless OTEL_* asks; a checkout is one trace holding its SQL and its
Stripe call; nothing secret is exported; log lines carry the trace id."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from marketplace_api import tracing
from marketplace_api.config import Settings
from marketplace_api.db import create_engine
from marketplace_api.deps import AppState
from marketplace_api.main import create_app
from marketplace_api.observability import configure_logging
from marketplace_api.tracing import TracingMiddleware
from tests.conftest import PASSWORD, AuthUser, build_state
from tests.fixtures.catalog import make_listing, make_vendor
from tests.fixtures.stripe import stripe_error
from tests.fixtures.stripe_mocks import mock_create_intent
from tests.fixtures.tracing import descends_from, exported_text, named

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --- on only when the OpenTelemetry variables say so -------------------------------------------


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "marketplace-api"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
    ],
)
def test_traces_are_on_only_when_the_otel_variables_ask(environ: dict[str, str], on: bool) -> None:
    assert tracing.wanted(environ) is on


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
        {"OTEL_TRACES_EXPORTER": "zipkin"},
    ],
)
def test_an_exporter_this_service_cannot_run_is_refused_by_name(environ: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="not supported"):
        tracing._exporters(environ)


def test_service_name_defaults_to_ours_and_otel_service_name_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert tracing.resource().attributes["service.name"] == "marketplace-api"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout-eu")
    assert tracing.resource().attributes["service.name"] == "checkout-eu"


async def test_off_installs_nothing_on_the_request_path(settings: Settings) -> None:
    assert not tracing.enabled()
    app = create_app(settings)
    assert TracingMiddleware not in [m.cls for m in app.user_middleware]
    engine = create_engine(settings.database_url or "", pool_size=1, max_overflow=0)
    try:
        assert len(engine.sync_engine.dispatch.before_cursor_execute) == 0
    finally:
        await engine.dispose()
    with tracing.span("anything") as span:
        assert not span.is_recording()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging("INFO", json_logs=True)
        assert not [
            f for f in root.handlers[0].filters if isinstance(f, tracing.TraceContextFilter)
        ]
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


_SCRIPT = """
import asyncio, httpx
from marketplace_api.config import Settings
from marketplace_api.main import create_app
from opentelemetry import trace

async def main():
    app = create_app(Settings(_env_file=None, environment="test", database_url="postgresql+asyncpg://x/y"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/healthz")).status_code == 200
    trace.get_tracer_provider().force_flush()

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("sampler", "exported"), [("parentbased_always_on", True), ("always_off", False)]
)
def test_otel_variables_alone_switch_traces_on_in_a_fresh_process(
    sampler: str, exported: bool
) -> None:
    """The real `configure` path: OTEL_TRACES_EXPORTER=console prints the request's span; the
    sampler follows OTEL_TRACES_SAMPLER."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ |= {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": sampler}
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _SCRIPT],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert ('"name": "GET /healthz"' in done.stdout) is exported
    if exported:
        assert '"service.name": "marketplace-api"' in done.stdout
        assert '"http.response.status_code": 200' in done.stdout


# --- a checkout is one trace ---------------------------------------------------------------------


@pytest.fixture
async def traced_engine(
    spans: InMemorySpanExporter, engine: AsyncEngine, database_url: str
) -> AsyncIterator[AsyncEngine]:
    """The app's own engine factory, after traces were switched on (`engine`: migrated)."""
    traced = create_engine(database_url, pool_size=2, max_overflow=0)
    yield traced
    await traced.dispose()


@pytest.fixture
async def connection(traced_engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """This module's requests and factories run in a rolled-back transaction on the traced
    engine (the conftest fixture of the same name, on another engine)."""
    async with traced_engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            if transaction.is_active:
                await transaction.rollback()


@pytest.fixture
async def app_state(settings: Settings, traced_engine: AsyncEngine) -> AppState:
    return build_state(settings, traced_engine)


async def test_checkout_is_one_trace_with_its_sql_and_stripe_call(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
    spans: InMemorySpanExporter,
    settings: Settings,
) -> None:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, price=1999, stock=5)
    route = mock_create_intent(stripe_api)
    spans.clear()

    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 3}]},
        headers=buyer.headers | {"X-Request-ID": "a" * 32},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    finished = spans.get_finished_spans()
    [request] = [s for s in finished if s.kind is SpanKind.SERVER]
    assert request.name == "POST /v1/buyer/orders"
    assert request.attributes is not None
    assert request.context is not None
    assert request.attributes["http.route"] == "/v1/buyer/orders"
    assert request.attributes["http.response.status_code"] == 201
    assert request.attributes["marketplace.request_id"] == "a" * 32
    assert request.parent is None
    # One trace: every span of the request belongs to it and hangs below the request span.
    assert {s.context.trace_id for s in finished if s.context} == {request.context.trace_id}
    assert all(descends_from(s, request, finished) for s in finished if s is not request)

    sql = [s for s in finished if s.attributes and "db.statement" in s.attributes]
    statements = [str(s.attributes["db.statement"]) for s in sql if s.attributes]
    assert any(st.startswith("INSERT INTO payments") for st in statements), statements
    assert any(st.startswith("UPDATE listings") for st in statements), statements
    assert all(s.kind is SpanKind.CLIENT for s in sql)

    [stripe_span] = named(finished, "stripe PaymentIntent.create")
    assert stripe_span.kind is SpanKind.CLIENT
    assert stripe_span.status.status_code is StatusCode.UNSET
    assert dict(stripe_span.attributes or {}) == {
        "stripe.operation": "PaymentIntent.create",
        "stripe.idempotency_key": f"payment:{body['payment_id']}:create",
        "stripe.request_id": route.calls.last.response.headers["Request-Id"],
        "http.response.status_code": 200,
    }
    # No generic HTTP instrumentation below the Stripe call (it would record URLs and bodies).
    assert not [s for s in finished if s.parent and s.parent.span_id == stripe_span.context.span_id]

    exported = exported_text(finished)
    assert settings.stripe_secret_key is not None
    for secret in (
        settings.stripe_secret_key.get_secret_value(),
        body["client_secret"],
        buyer.token,
        buyer.user.email,  # sent to Stripe as receipt_email: a parameter
        str(listing.id),  # in the request body and SQL parameters only
        PASSWORD,
    ):
        assert secret not in exported


async def test_failed_stripe_call_span_has_the_error_type_and_request_id_not_the_message(
    client: httpx.AsyncClient,
    session: AsyncSession,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
    spans: InMemorySpanExporter,
) -> None:
    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, price=1999, stock=5)
    answer = stripe_error(500, type_="api_error", message="secret-ish detail cus_0123")
    mock_create_intent(stripe_api, return_value=answer)
    spans.clear()

    response = await client.post(
        "/v1/buyer/orders",
        json={"items": [{"listing_id": str(listing.id), "quantity": 1}]},
        headers=buyer.headers,
    )

    assert response.status_code == 503
    finished = spans.get_finished_spans()
    [stripe_span] = named(finished, "stripe PaymentIntent.create")
    assert stripe_span.status.status_code is StatusCode.ERROR
    assert stripe_span.attributes is not None
    assert stripe_span.attributes["error.type"] == "StripeUnavailable"
    assert stripe_span.attributes["stripe.error"] == "APIError"
    assert stripe_span.attributes["stripe.request_id"] == answer.headers["Request-Id"]
    assert stripe_span.attributes["http.response.status_code"] == 500
    assert "secret-ish detail" not in exported_text(finished)
    [request] = named(finished, "POST /v1/buyer/orders")
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 503
    assert request.status.status_code is StatusCode.ERROR


async def test_incoming_traceparent_is_continued(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    trace_id = uuid.uuid4().hex
    parent_id = uuid.uuid4().hex[:16]
    response = await client.get(
        "/healthz", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"}
    )
    assert response.status_code == 200
    [request] = named(spans.get_finished_spans(), "GET /healthz")
    assert request.context is not None
    assert request.parent is not None
    assert format(request.context.trace_id, "032x") == trace_id
    assert format(request.parent.span_id, "016x") == parent_id


# --- logs ----------------------------------------------------------------------------------------


async def test_json_log_lines_carry_the_trace_and_span_id(
    client: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging("INFO", json_logs=True)
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        logging.getLogger("tests.outside").info("no span here")
        response = await client.get("/healthz")
        assert response.status_code == 200
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)

    [request] = named(spans.get_finished_spans(), "GET /healthz")
    assert request.context is not None
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [outside] = [line for line in lines if line["message"] == "no span here"]
    assert "trace_id" not in outside
    [access] = [line for line in lines if line["name"] == "marketplace_api.access"]
    assert access["trace_id"] == format(request.context.trace_id, "032x")
    assert access["span_id"] == format(request.context.span_id, "016x")
    assert access["request_id"] == response.headers["X-Request-ID"]
