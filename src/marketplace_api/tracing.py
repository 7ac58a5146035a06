"""OpenTelemetry traces: off unless the standard `OTEL_*` variables ask for them.

On (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_TRACES_EXPORTER` set, `OTEL_SDK_DISABLED` not `true`),
one trace follows a request through its SQL statements and Stripe calls, and a job or a webhook
event through theirs; every log line written inside a span carries its `trace_id` and `span_id`.
Off, nothing is installed: no middleware, no SQL listeners, no spans; the few call sites that
always run (`span()`, the log filter) check one module global and return.

What spans hold is chosen here, not by generic instrumentation: no request or response bodies,
no query strings, no SQL parameters, no Stripe parameters, URLs or API keys, and no exception
messages (they can quote values); errors are recorded by exception type. The httpx
instrumentation is deliberately not used: it would record Stripe's URLs and headers.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cache
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, Tracer
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace_api import __version__

if TYPE_CHECKING:  # the SDK is imported only when traces are switched on
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "marketplace-api"
INSTRUMENTATION_NAME = "marketplace_api"

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_configured = False
_instrumented_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


# --- switching it on -----------------------------------------------------------------------------


def _exporter_names(environ: Mapping[str, str]) -> list[str] | None:
    value = environ.get("OTEL_TRACES_EXPORTER")
    if value is None or not value.strip():
        return None
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    return [name for name in names if name != "none"]


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces (the OpenTelemetry variables, nothing of ours)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    names = _exporter_names(environ)
    if names is not None:
        return bool(names)
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def _exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    exporters: list[SpanExporter] = []
    for name in _exporter_names(environ) or ["otlp"]:
        if name == "otlp":
            protocol = (
                environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            )
            if protocol.strip() != "http/protobuf":
                raise ValueError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: this service "
                    "exports traces with OTLP over HTTP (http/protobuf, port 4318)"
                )
            # Reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION itself.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        else:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER={name} is not supported (otlp, console or none)"
            )
    return exporters


def resource() -> Resource:
    """`OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` (read by the SDK from the process
    environment) win; the service name defaults to ours."""
    from opentelemetry.sdk.resources import Resource

    found = Resource.create({"service.version": __version__})
    if str(found.attributes.get("service.name", "")).startswith("unknown_service"):
        found = found.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    return found


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Turn traces on if the environment asks for them; the first call in a process decides
    (`configure_logging`, the API's `create_app`, the worker's `run_worker`). Returns whether
    traces are on.

    The sampler follows `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (SDK default:
    parentbased_always_on), the batch processor `OTEL_BSP_*`."""
    global _configured
    if _configured or _tracer is not None:
        return _tracer is not None
    _configured = True
    environ = os.environ if environ is None else environ
    if not wanted(environ):
        return False
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=resource())
    for exporter in _exporters(environ):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    install(provider)
    logger.info(
        "tracing on", extra={"service_name": provider.resource.attributes.get("service.name")}
    )
    return True


def install(provider: TracerProvider) -> None:
    """Record spans with `provider` from now on (`configure`, and tests with an in-memory
    exporter). Engines created from now on are instrumented."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__)


def uninstall() -> None:
    """Back to off (tests): spans stop, SQL listeners are removed from instrumented engines."""
    global _tracer, _provider
    _tracer = None
    _provider = None
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    EngineTracer.remove_all_event_listeners()  # type: ignore[no-untyped-call]
    _instrumented_engines.clear()


def enabled() -> bool:
    return _tracer is not None


# --- spans ---------------------------------------------------------------------------------------


def mark_error(span: Span, exc: BaseException) -> None:
    """An error by its type only: exception messages may quote values we never export."""
    span.set_attribute("error.type", type(exc).__name__)
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


@contextmanager
def _recording(
    tracer: Tracer, name: str, kind: SpanKind, attributes: dict[str, Any] | None
) -> Iterator[Span]:
    with tracer.start_as_current_span(
        name,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except Exception as exc:
            mark_error(current, exc)
            raise


def span(
    name: str, *, kind: SpanKind = SpanKind.INTERNAL, attributes: dict[str, Any] | None = None
) -> AbstractContextManager[Span]:
    """A span around a block, current inside it; when traces are off, a span that records
    nothing (`set_attribute` and friends do nothing)."""
    if _tracer is None:
        return nullcontext(INVALID_SPAN)
    return _recording(_tracer, name, kind, attributes)


# --- SQL -----------------------------------------------------------------------------------------


def _sql_error(context: ExceptionContext) -> None:
    """A failed statement's span: the error's type, not the driver's message."""
    execution = context.execution_context
    current = getattr(execution, "_otel_span", None) if execution is not None else None
    if current is None:
        return
    if current.is_recording():
        mark_error(current, context.original_exception)
    current.end()


def instrument_engine(engine: AsyncEngine) -> None:
    """A CLIENT span per SQL statement (its text with placeholders, never the parameters)."""
    if _provider is None or engine.sync_engine in _instrumented_engines:
        return
    from opentelemetry.instrumentation.sqlalchemy.version import __version__ as version
    from opentelemetry.metrics import get_meter

    sync_engine = engine.sync_engine
    tracer = _provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", version)
    connections = get_meter(INSTRUMENTATION_NAME).create_up_down_counter(
        "db.client.connections.usage"
    )
    _engine_tracer_class()(tracer, sync_engine, connections)
    _instrumented_engines.add(sync_engine)


@cache
def _engine_tracer_class() -> Any:
    """The instrumentation's engine tracer with our error hook instead of its own, which puts
    the driver's message (it can quote row values) into the span's status."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    class _EngineTracer(EngineTracer):
        @classmethod
        def _register_event_listener(
            cls, target: Any, identifier: str, func: Any, *args: Any, **kw: Any
        ) -> None:
            if identifier == "handle_error":
                func = _sql_error
            super()._register_event_listener(target, identifier, func, *args, **kw)  # type: ignore[no-untyped-call]

    return _EngineTracer


# --- HTTP requests -------------------------------------------------------------------------------


class _HeaderGetter:
    """Reads W3C `traceparent`/`tracestate` from ASGI headers (a caller's trace is continued)."""

    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted_key = key.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in carrier if k.lower() == wanted_key]
        return values or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_HEADERS = _HeaderGetter()


def _route_template(scope: Scope) -> str | None:
    """The matched route's full template (`/v1/buyer/orders/{order_id}`), never the raw path.
    FastAPI includes routers lazily: `scope["route"]` holds only the innermost prefixes, the
    effective route context has the whole template."""
    fastapi_scope = scope.get("fastapi")
    effective = (
        fastapi_scope.get("effective_route_context") if isinstance(fastapi_scope, dict) else None
    )
    template = getattr(effective, "path_format", None) or getattr(scope.get("route"), "path", None)
    return template if isinstance(template, str) else None


class TracingMiddleware:
    """A SERVER span per HTTP request, named by method and route template (`POST
    /v1/buyer/orders`), with the status and the request id. Installed only when traces are on;
    it sits inside the request-id middleware and outside the access log, so the access line
    carries the trace id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = _tracer
        if scope["type"] != "http" or tracer is None:
            await self.app(scope, receive, send)
            return
        from asgi_correlation_id import correlation_id

        method = scope["method"]
        parent = propagate.extract(scope.get("headers") or [], getter=_HEADERS)  # type: ignore[arg-type]
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope["path"],  # never the query string
            "url.scheme": scope.get("scheme", "http"),
        }
        request_id = correlation_id.get()
        if request_id:
            attributes["marketplace.request_id"] = request_id
        with tracer.start_as_current_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as current:
            status = 500

            async def send_with_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    current.set_attribute("http.response.status_code", status)
                await send(message)

            try:
                await self.app(scope, receive, send_with_status)
            except Exception as exc:
                mark_error(current, exc)
                raise
            finally:
                template = _route_template(scope)
                if template:
                    current.update_name(f"{method} {template}")
                    current.set_attribute("http.route", template)
                if status >= 500:
                    current.set_status(Status(StatusCode.ERROR))


# --- Stripe --------------------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def record_stripe_attempt(
    request_headers: Mapping[str, str], status: int | None, response_headers: Mapping[str, str]
) -> None:
    """On the current Stripe call's span: our Idempotency-Key and Stripe-Account, and per HTTP
    attempt (the SDK retries) the status and Stripe's request id. Never the API key, the URL's
    query, or the form body."""
    current = trace.get_current_span()
    if not current.is_recording():
        return
    key = _header(request_headers, "idempotency-key")
    if key:
        current.set_attribute("stripe.idempotency_key", key)
    account = _header(request_headers, "stripe-account")
    if account:
        current.set_attribute("stripe.account", account)
    request_id = _header(response_headers, "request-id")
    attempt: dict[str, Any] = {}
    if status is not None:
        current.set_attribute("http.response.status_code", status)
        attempt["http.response.status_code"] = status
    if request_id:
        current.set_attribute("stripe.request_id", request_id)
        attempt["stripe.request_id"] = request_id
    current.add_event("stripe.http_attempt", attempt)


# --- jobs ----------------------------------------------------------------------------------------


def record_enqueued(task_name: str, job_ids: list[int]) -> None:
    """On the current span (a request, a webhook event, a job): the jobs it enqueued. A job's
    run is its own trace (the queue keeps no trace context); its span carries the same
    `job.id`, which leads from one to the other."""
    if _tracer is None:
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.add_event("job.enqueued", {"job.task": task_name, "job.ids": job_ids})


# --- logs ----------------------------------------------------------------------------------------


class TraceContextFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (hex, as collectors show them) to records written inside a
    span; JSON logs carry them as fields. Installed by `configure_logging` when traces are on."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True
