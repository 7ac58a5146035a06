"""The simulator in the development server: `make run` without Stripe keys.

`simulator_mode(app, settings)` (used by the app's lifespan) builds the simulator with its state
in `STRIPE_SIMULATOR_STATE_FILE` (kept across restarts, next to the embedded database, so the
vendors' accounts in the database still exist on "Stripe" after a restart), gives the gateway an
in-process transport to it (no port, no network), registers the API's webhook endpoints with it
through the same code as `marketplace-api stripe-webhooks` and trusts their signing secrets, and
delivers events in the background: POSTed to the endpoint URL, through the app itself when the
URL is the API's own (ASGI, no socket), retried with backoff like Stripe does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from pydantic import SecretStr

from marketplace_api.config import Settings
from marketplace_api.integrations.stripe import (
    SIMULATOR_TRANSPORT,
    StripeGateway,
    build_stripe_client,
)
from marketplace_api.stripe_simulator.core import StripeSimulator
from marketplace_api.stripe_simulator.events import Delivery
from marketplace_api.webhooks.subscriptions import sync_webhook_endpoints

logger = logging.getLogger(__name__)

SECRET_KEY = "sk_test_simulator"  # noqa: S105 - not a secret: the simulator accepts any test key
PUBLISHABLE_KEY = "pk_test_simulator"
DELIVERY_ATTEMPTS = 6
TICK_SECONDS = 30.0


def webhook_url(settings: Settings) -> str:
    return settings.stripe_simulator_public_url.rstrip("/") + "/webhooks/stripe"


async def _deliver_forever(queue: asyncio.Queue[Delivery], app: Any, public_url: str) -> None:
    # An exception in the app answers 500 here (as uvicorn would), never kills this loop.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        httpx.AsyncClient(transport=transport, base_url=public_url, timeout=30) as local,
        httpx.AsyncClient(timeout=30) as remote,
    ):
        while True:
            delivery = await queue.get()
            own = delivery.url.startswith(public_url)
            for attempt in range(DELIVERY_ATTEMPTS):
                try:
                    if own:
                        answer = await delivery.post(local, httpx.URL(delivery.url).path)
                    else:
                        answer = await delivery.post(remote, delivery.url)
                    if answer.is_success:
                        break
                    status: object = answer.status_code
                except Exception as exc:  # one bad delivery must not stop the others
                    status = type(exc).__name__
                logger.warning(
                    "simulator: webhook delivery failed, retrying",
                    extra={"event_id": delivery.event_id, "status": status, "attempt": attempt},
                )
                await asyncio.sleep(min(2**attempt, 30))


async def _tick_forever(sim: StripeSimulator) -> None:
    """Stripe's clock runs on its own: sessions expire, payouts are made and paid."""
    while True:
        await asyncio.sleep(TICK_SECONDS)
        try:
            sim.tick()
        except Exception:
            logger.exception("simulator: the clock tick failed")


@contextlib.asynccontextmanager
async def simulator_mode(app: Any, settings: Settings) -> AsyncIterator[Settings]:
    """Run the app on the simulator; yields the settings the app must use (the simulator's
    keys and webhook secrets added). `app.state.stripe_simulator` holds it for the pages."""
    queue: asyncio.Queue[Delivery] = asyncio.Queue()
    public_url = settings.stripe_simulator_public_url.rstrip("/")
    sim = StripeSimulator(
        public_url=public_url,
        deliver=queue.put_nowait,
        state_file=settings.stripe_simulator_state_file,
    )
    app.state.stripe_simulator = sim
    settings = settings.model_copy(
        update={
            "stripe_secret_key": SecretStr(SECRET_KEY),
            "stripe_publishable_key": PUBLISHABLE_KEY,
        }
    )
    token = SIMULATOR_TRANSPORT.set(sim.transport())
    gateway = StripeGateway(_client(settings, sim))
    url = webhook_url(settings)
    plans = await sync_webhook_endpoints(gateway, url)
    secrets = [
        sim.private(we["id"])["secret"]
        for we in sim.state.webhook_endpoints.values()
        if we["url"] == url
    ]
    settings = settings.model_copy(
        update={
            "stripe_webhook_secrets": [
                *settings.stripe_webhook_secrets,
                *(SecretStr(s) for s in secrets),
            ]
        }
    )
    endpoints = ", ".join(f"{p.role} {p.endpoint_id} ({p.action})" for p in plans)
    logger.warning(
        "Stripe: the built-in Stripe Connect simulator, not Stripe (ENVIRONMENT=development and "
        "no STRIPE_SECRET_KEY; set it to use Stripe). Hosted pages at %s/simulator/, webhooks "
        "to %s (endpoints %s), state in %s",
        public_url,
        url,
        endpoints,
        settings.stripe_simulator_state_file,
    )
    tasks = [
        asyncio.create_task(_deliver_forever(queue, app, public_url)),
        asyncio.create_task(_tick_forever(sim)),
    ]
    try:
        yield settings
    finally:
        SIMULATOR_TRANSPORT.reset(token)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _client(settings: Settings, sim: StripeSimulator) -> Any:
    client = build_stripe_client(settings, transport=sim.transport())
    if client is None:  # settings always carry the simulator's key here
        raise RuntimeError("the simulator's client needs STRIPE_SECRET_KEY set")
    return client
