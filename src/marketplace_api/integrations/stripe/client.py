"""Building the Stripe client: async (`StripeClient` on `HTTPXClient`), pinned to the API version
the installed SDK was generated for, with the API base taken from settings.

The API version is pinned so the shapes of the objects we read do not change under us when the
account's default version moves.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

import httpx
import stripe

from marketplace_api import tracing
from marketplace_api.config import Settings

STRIPE_API_VERSION = stripe.api_version


def _drop_debug(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


# At DEBUG the SDK logs whole request and response bodies: client secrets, e-mail addresses,
# metadata; at INFO, Stripe's error messages, which may quote what was sent. Those records are
# dropped whatever LOG_LEVEL says (the gateway logs each error's type, code, param and request
# id itself); WARNING and above follow LOG_LEVEL (tests/security/test_logs_hold_no_secrets.py).
logging.getLogger("stripe").addFilter(_drop_debug)


class _FormContentHTTPXClient(stripe.HTTPXClient):
    """stripe 16.1 hands httpx the encoded form as `data=<str>`, which httpx 0.28 deprecates (a
    later httpx refuses it); send the same bytes as `content=` instead."""

    def _get_request_args_kwargs(  # type: ignore[no-untyped-def]
        self, method: str, url: str, headers: Any, post_data
    ):
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        data = kwargs.pop("data", None)
        if isinstance(data, str | bytes):
            kwargs["content"] = data
        elif data:
            kwargs["data"] = data
        return args, kwargs

    async def request_async(  # type: ignore[no-untyped-def]
        self, method: str, url: str, headers: Any, post_data=None
    ) -> tuple[bytes, int, Any]:
        """One HTTP attempt; with traces on, its key, status and request id go on the call's
        span (`StripeGateway._call`)."""
        if not tracing.enabled():
            return await super().request_async(method, url, headers, post_data)
        try:
            content, status, response_headers = await super().request_async(
                method, url, headers, post_data
            )
        except stripe.APIConnectionError:
            tracing.record_stripe_attempt(headers, None, {})
            raise
        tracing.record_stripe_attempt(headers, status, response_headers)
        return content, status, response_headers


# The development server on the Stripe simulator sets this for its lifetime, so every client
# built in the API process (its own, the in-process job worker's) talks to the simulator.
SIMULATOR_TRANSPORT: ContextVar[httpx.AsyncBaseTransport | None] = ContextVar(
    "stripe_simulator_transport", default=None
)


def build_stripe_client(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> stripe.StripeClient | None:
    """The client, or None without a secret key. `transport` (default: `SIMULATOR_TRANSPORT`)
    answers the SDK's requests instead of the network: the Stripe simulator in development."""
    if settings.stripe_secret_key is None:
        return None
    http_client = _FormContentHTTPXClient(timeout=settings.stripe_timeout_seconds)
    transport = transport or SIMULATOR_TRANSPORT.get()
    if transport is not None:
        http_client._client_async = httpx.AsyncClient(transport=transport)
    return stripe.StripeClient(
        settings.stripe_secret_key.get_secret_value(),
        stripe_version=STRIPE_API_VERSION,
        base_addresses={
            "api": settings.stripe_api_base,
            "connect": settings.stripe_connect_api_base,
        },
        max_network_retries=settings.stripe_max_network_retries,
        http_client=http_client,
    )
