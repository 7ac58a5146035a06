"""The gateway's transport and bookkeeping, independent of any domain call."""

from __future__ import annotations

import httpx
import pytest
import respx
from prometheus_client import REGISTRY

from marketplace_api.config import Settings
from marketplace_api.payments.stripe_gateway import (
    StripeGateway,
    StripeUnavailable,
    build_stripe_client,
)
from tests.fixtures.stripe import form, ok, stripe_error


def _gateway(settings: Settings) -> StripeGateway:
    client = build_stripe_client(settings)
    assert client is not None
    return StripeGateway(client)


def _count(operation: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "marketplace_stripe_requests_total", {"operation": operation, "outcome": outcome}
    )
    return value or 0.0


async def test_form_posts_are_sent_as_content_without_deprecation_warnings(
    settings: Settings, stripe_api: respx.MockRouter
) -> None:
    # pytest runs with warnings as errors: httpx's `data=<str>` deprecation would fail this test.
    route = stripe_api.post("/v1/payment_intents/pi_1/cancel").mock(
        return_value=ok({"id": "pi_1", "object": "payment_intent", "status": "canceled"})
    )
    before = _count("PaymentIntent.cancel", "ok")
    intent = await _gateway(settings).cancel_payment_intent(
        "pi_1", idempotency_key="payment:x:cancel"
    )
    assert intent["status"] == "canceled"
    request: httpx.Request = route.calls.last.request
    assert form(request) == {"cancellation_reason": "abandoned"}
    assert request.headers["Idempotency-Key"] == "payment:x:cancel"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert _count("PaymentIntent.cancel", "ok") == before + 1


async def test_stripe_outage_is_counted_and_mapped(
    settings: Settings, stripe_api: respx.MockRouter
) -> None:
    stripe_api.get("/v1/payment_intents/pi_2").mock(
        return_value=stripe_error(500, type_="api_error")
    )
    before = _count("PaymentIntent.retrieve", "APIError")
    with pytest.raises(StripeUnavailable):
        await _gateway(settings).retrieve_payment_intent("pi_2")
    assert _count("PaymentIntent.retrieve", "APIError") == before + 1
