"""Prometheus metrics: what the operator watches.

Series: HTTP latency by route template, Stripe API calls by operation and outcome, webhook events
by type and status, background jobs by task and outcome, payments by status and the DB pool.
`GET /metrics` is off unless `METRICS_TOKEN` is set, and then needs `Authorization: Bearer <token>`,
so it is never public. With several uvicorn workers each process exposes its own counters.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.routing import APIRoute
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import Scope

from marketplace_api.openapi import operation_id

HTTP_REQUEST_SECONDS = Histogram(
    "marketplace_http_request_duration_seconds",
    "HTTP request latency by operation (the OpenAPI operationId, e.g. buyer-create_order).",
    ["method", "operation", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STRIPE_REQUESTS = Counter(
    "marketplace_stripe_requests_total",
    "Stripe API calls by operation and outcome (ok or the error class).",
    ["operation", "outcome"],
)
STRIPE_REQUEST_SECONDS = Histogram(
    "marketplace_stripe_request_duration_seconds",
    "Stripe API call latency by operation (SDK retries included).",
    ["operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_EVENTS = Counter(
    "marketplace_webhook_events_total",
    "Stripe webhook events by type and the status they ended in.",
    ["type", "status"],
)
JOBS = Counter(
    "marketplace_jobs_total",
    "Background jobs by task and outcome.",
    ["task", "outcome"],
)
PAYMENTS = Gauge(
    "marketplace_payments",
    "Payments by status (measured at scrape time).",
    ["status"],
)
DB_POOL = Gauge(
    "marketplace_db_pool_connections",
    "Database pool connections by state (measured at scrape time).",
    ["state"],
)


@contextmanager
def stripe_call(operation: str) -> Iterator[None]:
    """Time a Stripe call and count its outcome: `with stripe_call("payment_intents.create"):`."""
    start = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except Exception as exc:
        outcome = type(exc).__name__
        raise
    finally:
        STRIPE_REQUEST_SECONDS.labels(operation).observe(time.perf_counter() - start)
        STRIPE_REQUESTS.labels(operation, outcome).inc()


def observe_request(scope: Scope, status: int, seconds: float) -> None:
    """Record one HTTP request's latency (called by the access-log middleware)."""
    route = scope.get("route")
    # The operation id, never the raw path (ids in paths would make labels unbounded).
    if isinstance(route, APIRoute):
        operation = operation_id(route)
    else:
        operation = "unmatched" if route is None else "other"
    HTTP_REQUEST_SECONDS.labels(scope["method"], operation, str(status)).observe(seconds)
