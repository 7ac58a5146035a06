"""The gateway's transport and bookkeeping, independent of any domain call."""

from __future__ import annotations

import httpx
import pytest
import respx
from prometheus_client import REGISTRY

from marketplace_api.config import Settings
from marketplace_api.integrations.stripe import (
    StripeAnswerInvalid,
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
        return_value=ok(
            {
                "id": "pi_1",
                "object": "payment_intent",
                "status": "canceled",
                "amount": 2500,
                "currency": "usd",
            }
        )
    )
    before = _count("PaymentIntent.cancel", "ok")
    intent = await _gateway(settings).cancel_payment_intent(
        "pi_1", idempotency_key="payment:x:cancel"
    )
    assert intent.status == "canceled"
    request: httpx.Request = route.calls.last.request
    assert form(request) == {"cancellation_reason": "abandoned"}
    assert request.headers["Idempotency-Key"] == "payment:x:cancel"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert _count("PaymentIntent.cancel", "ok") == before + 1


@pytest.mark.parametrize(
    "answer",
    [
        {"id": "tr_1", "object": "transfer", "currency": "usd"},  # no amount
        {"id": "tr_1", "object": "transfer", "amount": "2500", "currency": "usd"},  # a string
        {"id": "tr_1", "object": "transfer", "amount": 2500, "currency": "usd", "metadata": []},
    ],
)
async def test_an_answer_we_cannot_read_is_a_transient_stripe_problem(
    settings: Settings, stripe_api: respx.MockRouter, answer: dict[str, object]
) -> None:
    # The transfer may exist at Stripe: the caller must retry with the same key, as after a
    # timeout (StripeUnavailable), never record it as refused or crash with a validation error.
    stripe_api.post("/v1/transfers").mock(return_value=ok(answer))
    with pytest.raises(StripeAnswerInvalid) as raised:
        await _gateway(settings).create_transfer(
            amount=2500,
            currency="usd",
            destination="acct_1",
            source_transaction=None,
            transfer_group=None,
            metadata={"transfer_id": "t1"},
            idempotency_key="transfer:t1",
        )
    assert isinstance(raised.value, StripeUnavailable)
    assert raised.value.status == 502
    assert raised.value.code == "stripe_answer_invalid"
    assert raised.value.headers["Retry-After"]


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


async def test_webhook_endpoint_calls_go_through_the_shared_wrapper(
    settings: Settings, stripe_api: respx.MockRouter
) -> None:
    # Listing (auto-paged), creating and updating endpoints are counted and mapped like every
    # other call: an outage is our `StripeUnavailable`, never Stripe's exception.
    stripe_api.get("/v1/webhook_endpoints").mock(return_value=stripe_error(500, type_="api_error"))
    stripe_api.post("/v1/webhook_endpoints").mock(return_value=stripe_error(500, type_="api_error"))
    gateway = _gateway(settings)
    listed, created = (
        _count("WebhookEndpoint.list", "APIError"),
        _count("WebhookEndpoint.create", "APIError"),
    )
    with pytest.raises(StripeUnavailable):
        await gateway.list_webhook_endpoints()
    with pytest.raises(StripeUnavailable):
        await gateway.create_webhook_endpoint(
            url="https://example.test/webhooks/stripe",
            enabled_events=["payment_intent.succeeded"],
            connect=False,
            description="platform",
            metadata={},
        )
    assert _count("WebhookEndpoint.list", "APIError") == listed + 1
    assert _count("WebhookEndpoint.create", "APIError") == created + 1


async def test_an_expanded_charge_is_read_and_dumped_back_in_stripes_shape(
    settings: Settings, stripe_api: respx.MockRouter
) -> None:
    # `latest_charge` stays the charge's id; what the expansion carries (the destination
    # transfer, Stripe's fee) is read beside it, and a dump is the JSON Stripe sent.
    charge = {
        "id": "ch_1",
        "object": "charge",
        "transfer": {"id": "tr_1", "object": "transfer"},
        "balance_transaction": {
            "id": "txn_1",
            "object": "balance_transaction",
            "amount": 2500,
            "fee": 103,
        },
    }
    route = stripe_api.get("/v1/payment_intents/pi_3").mock(
        return_value=ok(
            {
                "id": "pi_3",
                "object": "payment_intent",
                "status": "succeeded",
                "amount": 2500,
                "currency": "usd",
                "latest_charge": charge,
            }
        )
    )
    intent = await _gateway(settings).retrieve_payment_intent("pi_3")
    assert route.calls.last.request.url.params["expand[0]"] == "latest_charge"
    assert intent.latest_charge == "ch_1"
    assert intent.expanded_charge is not None
    assert intent.expanded_charge.transfer == "tr_1"
    assert intent.expanded_charge.balance_transaction is not None
    assert intent.expanded_charge.balance_transaction.fee == 103
