"""`create_app()`: the FastAPI application, its middleware, routers and lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from marketplace_api import __version__
from marketplace_api.api import health, metrics, operation_id, webhooks
from marketplace_api.api.v1 import router as v1_router
from marketplace_api.api.v1.auth.cookies import CSRF_HEADER
from marketplace_api.config import Settings, get_settings
from marketplace_api.db import create_engine, create_sessionmaker
from marketplace_api.deps import AppState
from marketplace_api.errors import install_error_handlers
from marketplace_api.jobs.worker import in_process_worker
from marketplace_api.middleware import BodySizeLimitMiddleware
from marketplace_api.migrations import resolve_database_url
from marketplace_api.observability import AccessLogMiddleware, configure_logging
from marketplace_api.openapi import install_openapi
from marketplace_api.payments.stripe_gateway import StripeGateway, build_stripe_client
from marketplace_api.ratelimit import RateLimiter
from marketplace_api.webhooks.dispatch import load_handlers

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


def create_app(settings: Settings | None = None, *, state: AppState | None = None) -> FastAPI:
    """Build the app. Tests pass `state` (engine bound to the test database)."""
    settings = settings or (state.settings if state else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state is not None:
            app.state.marketplace = state
            yield
            return
        configure_logging(settings.log_level, json_logs=settings.log_json)
        engine = create_engine(
            resolve_database_url(settings),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        client = build_stripe_client(settings)
        app.state.marketplace = AppState(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            stripe=StripeGateway(client) if client else None,
            rate_limiter=RateLimiter(settings.rate_limit_storage_url),
        )
        load_handlers()  # import the webhook handlers now, not on the first delivery
        # What exists now lives as long as the process (≈ 200,000 objects: modules, classes, the
        # app). Frozen, the cyclic collector's full passes skip it: unfrozen, each pass stalled
        # every request for ≈ 250 ms on a 2-core VM, the benchmarks' p99.
        gc.freeze()
        # The one-command setup (embedded database) also runs the background jobs in-process.
        worker: AbstractAsyncContextManager[None] = (
            in_process_worker(settings, engine.url.render_as_string(hide_password=False))
            if settings.run_worker_in_process
            else nullcontext()
        )
        try:
            async with worker:
                yield
        finally:
            await engine.dispose()

    app = FastAPIOffline(
        title="marketplace-api",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    if state is not None:
        app.state.marketplace = state

    install_error_handlers(app)
    # Outermost first: request id, then access log, CORS, the body limit and (innermost, added by
    # install_error_handlers) the catch-all that renders unexpected exceptions as a 500 problem.
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
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")

    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(v1_router)
    app.include_router(webhooks.router)

    install_openapi(app)

    return app
