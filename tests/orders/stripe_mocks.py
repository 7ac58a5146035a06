"""respx handlers answering like Stripe, echoing what was sent."""

from __future__ import annotations

from typing import Any

import httpx
import respx

from tests.fixtures.stripe import STRIPE_API_BASE, form, ok, stripe_id
from tests.orders.factories import payment_intent


def _metadata(fields: dict[str, str]) -> dict[str, str]:
    return {k[len("metadata[") : -1]: v for k, v in fields.items() if k.startswith("metadata[")}


def create_intent_handler(request: httpx.Request) -> httpx.Response:
    fields = form(request)
    # Stripe answers a replayed idempotency key with the same object: derive the id from it.
    key = request.headers.get("Idempotency-Key", "")
    pid = "pi_" + key.replace(":", "_").replace("-", "")[:40]
    return ok(
        payment_intent(
            amount=int(fields["amount"]),
            currency=fields["currency"],
            metadata=_metadata(fields),
            intent_id=pid,
        )
    )


def mock_create_intent(stripe_api: respx.MockRouter, **kwargs: Any) -> respx.Route:
    route = stripe_api.post(f"{STRIPE_API_BASE}/v1/payment_intents")
    if kwargs:
        return route.mock(**kwargs)
    return route.mock(side_effect=create_intent_handler)


def checkout_session_handler(request: httpx.Request) -> httpx.Response:
    fields = form(request)
    sid = stripe_id("cs_test")
    return ok(
        {
            "id": sid,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "payment_intent": None,
            "client_reference_id": fields.get("client_reference_id"),
            "expires_at": int(fields["expires_at"]),
            "metadata": _metadata(fields),
            "url": f"https://checkout.stripe.com/c/pay/{sid}",
        }
    )
