"""`create_app()`: the FastAPI application, its middleware, routers and lifespan."""

from __future__ import annotations

import gc
import importlib
from collections.abc import AsyncIterator
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    nullcontext,
)
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from marketplace_api import __version__
from marketplace_api.api import health, metrics, webhooks
from marketplace_api.api.v1 import router as v1_router
from marketplace_api.api.v1.auth.cookies import CSRF_HEADER
from marketplace_api.config import Environment, Settings, get_settings
from marketplace_api.db import create_engine, create_sessionmaker
from marketplace_api.deps import AppState
from marketplace_api.errors import install_error_handlers
from marketplace_api.idempotency.service import dispose_lock_engine
from marketplace_api.integrations.stripe import StripeGateway, build_stripe_client
from marketplace_api.middleware import BodySizeLimitMiddleware, SecurityHeadersMiddleware
from marketplace_api.migrations import resolve_database_url
from marketplace_api.observability import (
    AccessLogMiddleware,
    configure_logging,
    install_safe_exception_logging,
)
from marketplace_api.openapi import install_openapi, operation_id
from marketplace_api.ratelimit import RateLimiter
from marketplace_api.tracing import TracingMiddleware
from marketplace_api.tracing import configure as configure_tracing
from marketplace_api.webhooks.dispatch import load_handlers
from marketplace_api.worker.runner import in_process_worker

DESCRIPTION = """
The money side of a multi-vendor marketplace on Stripe Connect.

* **platform** — public storefront and client configuration (no token).
* **auth** — register, log in (OAuth2 password flow: use *Authorize*), refresh, log out.
* **buyer** / **vendor** / **admin** — routes for each role (Bearer token).
* **webhooks** — Stripe's signed events.

Every error is `application/problem+json` with a stable `code`. Amounts are integers in the
currency's minor unit (cents for `usd`, yen for `jpy`, fils for `kwd`).
"""

TAGS = [
    {"name": "platform", "description": "Public storefront and configuration. No token."},
    {"name": "auth", "description": "Accounts and tokens."},
    {"name": "buyer", "description": "Checkout, orders and payments of the signed-in buyer."},
    {"name": "vendor", "description": "Stripe onboarding, listings and sales of a vendor."},
    {"name": "admin", "description": "Operator actions: vendors, releases, refunds, events."},
    {"name": "webhooks", "description": "Stripe webhook endpoint (signature-verified)."},
    {"name": "health", "description": "Liveness and readiness probes."},
]


# What a browser page may send cross-origin (the preflight answers these), and read back.
CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "Last-Event-ID",
    "X-Request-ID",
    CSRF_HEADER,
]
CORS_EXPOSE_HEADERS = [
    "X-Request-ID",
    "Retry-After",
    "Location",
    "Idempotent-Replayed",
    "WWW-Authenticate",
]


# Modules the Stripe SDK and anyio import on first use: the first checkout after a start paid
# ≈ 120 ms of CPU for them (and every worker of `--workers N` once). Imported here, before
# `gc.freeze()`, they cost the start instead and are frozen with the rest.
_LAZY_MODULES = (
    "anyio._backends._asyncio",  # FastAPI's yield dependencies (a cancel scope each)
    "anyio.streams.tls",  # httpx's transport, on its first connection
    "stripe._object_classes",
    "stripe._payment_intent",
    "stripe._payment_intent_service",
)


def _import_lazy_modules() -> None:
    for name in _LAZY_MODULES:
        importlib.import_module(name)


def create_app(settings: Settings | None = None, *, state: AppState | None = None) -> FastAPI:
    """Build the app. Tests pass `state` (engine bound to the test database)."""
    settings = settings or (state.settings if state else get_settings())
    tracing_on = configure_tracing()  # OTEL_* variables; before any engine is created

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state is not None:
            app.state.marketplace = state
            yield
            return
        configure_logging(settings.log_level, json_logs=settings.log_json)
        stack = AsyncExitStack()
        run_settings = settings
        if settings.use_stripe_simulator:
            from marketplace_api.stripe_simulator.dev import simulator_mode

            # Development without Stripe keys: the built-in simulator plays Stripe.
            run_settings = await stack.enter_async_context(simulator_mode(app, settings))
        engine = create_engine(
            resolve_database_url(settings),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        client = build_stripe_client(run_settings)
        app.state.marketplace = AppState(
            settings=run_settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            stripe=StripeGateway(client) if client else None,
            rate_limiter=RateLimiter(settings.rate_limit_storage_url),
        )
        load_handlers()  # import the webhook handlers now, not on the first delivery
        _import_lazy_modules()
        # What exists now lives as long as the process (≈ 200,000 objects: modules, classes, the
        # app). Frozen, the cyclic collector's full passes skip it: unfrozen, each pass stalled
        # every request for ≈ 250 ms on a 2-core VM, the benchmarks' p99.
        gc.freeze()
        # The one-command setup (embedded database) also runs the background jobs in-process.
        worker: AbstractAsyncContextManager[None] = (
            in_process_worker(run_settings, engine.url.render_as_string(hide_password=False))
            if settings.run_worker_in_process
            else nullcontext()
        )
        try:
            async with worker:
                yield
        finally:
            await dispose_lock_engine(engine)
            await engine.dispose()
            await stack.aclose()

    install_safe_exception_logging()
    app_options: dict[str, Any] = {
        "title": "marketplace-api",
        "version": __version__,
        "description": DESCRIPTION,
        "openapi_tags": TAGS,
        "lifespan": lifespan,
        "generate_unique_id_function": operation_id,
        "swagger_ui_parameters": {"persistAuthorization": True},
    }
    # Off (404), the docs and the OpenAPI document do not map the API for a stranger.
    app = (
        FastAPIOffline(**app_options)
        if settings.docs_on
        else FastAPI(**app_options, docs_url=None, redoc_url=None, openapi_url=None)
    )
    if state is not None:
        app.state.marketplace = state

    install_error_handlers(app)
    # Outermost first: security headers, request id, then access log, CORS, the body limit and
    # (innermost, added by install_error_handlers) the catch-all that renders unexpected
    # exceptions as a 500 problem.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
    )
    app.add_middleware(AccessLogMiddleware)
    if tracing_on:  # off: not installed at all
        app.add_middleware(TracingMiddleware)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    app.add_middleware(
        SecurityHeadersMiddleware,
        hsts_max_age=(
            settings.hsts_max_age_seconds
            if settings.environment is Environment.production
            else None
        ),
    )

    # Starlette tries routes in order: Stripe's deliveries, the busiest path without a token,
    # match before the hundred-odd /v1 routes are tried.
    app.include_router(health.router)
    app.include_router(webhooks.router)
    app.include_router(metrics.router)
    app.include_router(v1_router)
    if settings.use_stripe_simulator:
        # A development tool: imported only when it is on, so production never loads it.
        from marketplace_api.stripe_simulator.pages import router as simulator_pages

        app.include_router(simulator_pages)  # hosted-page stand-ins; not in the OpenAPI document

    install_openapi(app)

    return app
