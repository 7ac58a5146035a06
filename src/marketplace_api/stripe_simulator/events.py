"""Events as Stripe emits them, signed as Stripe signs them, and their delivery.

Each event goes to every registered endpoint that subscribes to its type: Connect events (those
with `account` set, i.e. about a connected account) to `connect=true` endpoints, the platform's own
to the others. A `Delivery` is one event for one endpoint: the exact payload bytes and the
endpoint's secret; `headers()` signs at the moment of sending (`t=<ts>,v1=<hmac>`), so a test may
hold a delivery back, duplicate or reorder it and still post a valid signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from marketplace_api.integrations.stripe import STRIPE_EVENT_TYPES
from marketplace_api.stripe_simulator.state import Obj


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Stripe's `Stripe-Signature`: `t=<ts>,v1=<hex hmac_sha256(secret, "<ts>.<payload>")>`."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


@dataclass(frozen=True, slots=True)
class Delivery:
    endpoint_id: str
    url: str
    secret: str
    event_id: str
    type: str
    account: str | None
    payload: bytes

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.payload)
        return event

    def headers(self, timestamp: int | None = None) -> dict[str, str]:
        return {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(self.payload, self.secret, timestamp),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }

    async def post(self, client: httpx.AsyncClient, url: str | None = None) -> httpx.Response:
        """POST it (to `url`, default the endpoint's URL or its path on `client`'s base URL)."""
        target = url or (httpx.URL(self.url).path if client.base_url.host else self.url)
        return await client.post(target, content=self.payload, headers=self.headers())


DeliverFn = Callable[[Delivery], None]


# What an endpoint may subscribe to: every type the pinned SDK knows, or all of them (`*`).
EVENT_TYPES = STRIPE_EVENT_TYPES | {"*"}


def subscribes(endpoint: Obj, endpoint_connect: bool, connect: bool, event_type: str) -> bool:
    """Whether an endpoint (`connect=endpoint_connect`) gets an event (a Connect one or not)."""
    if endpoint.get("status") != "enabled" or endpoint_connect != connect:
        return False
    enabled = endpoint.get("enabled_events") or []
    return "*" in enabled or event_type in enabled
