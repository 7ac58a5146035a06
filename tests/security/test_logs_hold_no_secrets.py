"""Secrets and card data never reach the logs: a full flow (register, log in, refresh, check out,
a Stripe error, a signed webhook) is run with every logger at DEBUG, and each secret it handled is
searched for in every record — message, arguments and structured extras alike."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import Settings
from tests.conftest import PASSWORD
from tests.fixtures.stripe import WEBHOOK_SECRET, event, event_body, sign, stripe_error
from tests.orders.factories import make_listing, make_vendor
from tests.orders.stripe_mocks import create_intent_handler

CARD_NUMBER = "4242424242424242"


def _everything_logged(records: list[logging.LogRecord]) -> str:
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.extend(repr(value) for value in vars(record).values())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


async def test_full_flow_logs_no_secret(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    stripe_api: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    email = "secretive@example.com"
    assert (
        await client.post(
            "/v1/auth/register", json={"email": email, "password": PASSWORD, "role": "buyer"}
        )
    ).status_code == 201
    await client.post("/v1/auth/token", data={"username": email, "password": PASSWORD + "x"})
    tokens = (
        await client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    ).json()
    refreshed = (
        await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    headers = {"Authorization": f"Bearer {refreshed['access_token']}"}

    vendor = await make_vendor(session)
    listing = await make_listing(session, vendor, stock=5)
    body = {
        "items": [{"listing_id": str(listing.id), "quantity": 1}],
        # A client that wrongly puts card data in a free-text field: it must not be logged.
        "shipping": {
            "name": f"Card {CARD_NUMBER}",
            "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"},
        },
    }
    # Stripe rejects the first attempt (logged as a warning with Stripe's details)...
    intents = stripe_api.post("/v1/payment_intents").mock(
        return_value=stripe_error(400, code="parameter_invalid", param="amount")
    )
    rejected = await client.post("/v1/buyer/orders", json=body, headers=headers)
    assert rejected.status_code == 502
    # ...and accepts the second.
    intents.mock(side_effect=create_intent_handler)
    created = await client.post("/v1/buyer/orders", json=body, headers=headers)
    assert created.status_code == 201, created.text
    checkout = created.json()
    client_secret = checkout["client_secret"]
    assert client_secret

    payload = event_body(
        event(
            "payment_intent.succeeded",
            {
                "id": "pi_logged",
                "object": "payment_intent",
                "status": "succeeded",
                "amount": checkout["amount"],
                "currency": "usd",
                "metadata": {"payment_id": checkout["payment_id"]},
                "latest_charge": "ch_logged",
                "client_secret": client_secret,
            },
        )
    )
    webhook = await client.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": sign(payload), "Content-Type": "application/json"},
    )
    assert webhook.status_code == 200
    stale = await client.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": sign(payload, timestamp=int(time.time()) - 3600)},
    )
    assert stale.status_code == 400

    logged = _everything_logged(caplog.records)
    assert "request" in logged  # the access log did run: the search below is not vacuous
    secrets = {
        "password": PASSWORD,
        "access token": tokens["access_token"],
        "refreshed access token": refreshed["access_token"],
        "refresh token": tokens["refresh_token"],
        "rotated refresh token": refreshed["refresh_token"],
        "client secret": client_secret,
        "card number": CARD_NUMBER,
        "stripe secret key": settings.stripe_secret_key.get_secret_value(),  # type: ignore[union-attr]
        "webhook secret": WEBHOOK_SECRET,
        "jwt secret": settings.jwt_secret.get_secret_value(),
        "signature": sign(payload).split("v1=")[1][:16],
    }
    leaked = [name for name, value in secrets.items() if value in logged]
    assert leaked == []
