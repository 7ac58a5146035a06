"""Our webhook endpoints at Stripe (`stripe-webhooks`); signature verification is
`webhooks.signature.verify_event`."""

from __future__ import annotations

import hashlib
import json
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import stripe

from marketplace_api.integrations.stripe.calls import StripeCalls
from marketplace_api.integrations.stripe.client import STRIPE_API_VERSION


class WebhookEndpointCalls(StripeCalls):
    """List, create, update and delete our endpoints; every write has a derived key."""

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        async def every_page() -> list[WebhookEndpoint]:
            page = await self._client.v1.webhook_endpoints.list_async(params={"limit": 100})
            return [_webhook_endpoint(we) async for we in page.auto_paging_iter()]

        return await self._call(every_page(), operation="WebhookEndpoint.list")

    async def create_webhook_endpoint(
        self,
        *,
        url: str,
        enabled_events: Sequence[str],
        connect: bool,
        description: str,
        metadata: dict[str, str],
    ) -> WebhookEndpoint:
        """Create an endpoint pinned to the SDK's API version. The answer is the only time Stripe
        shows the signing secret (`WebhookEndpoint.secret`)."""
        params = {
            "url": url,
            "enabled_events": list(enabled_events),
            "connect": connect,
            "api_version": STRIPE_API_VERSION,
            "description": description,
            "metadata": metadata,
        }
        key = f"webhook-endpoint:{_digest(params)}:create"
        we = await self._call(
            self._client.v1.webhook_endpoints.create_async(
                params=cast(stripe.params.WebhookEndpointCreateParams, params),
                options={"idempotency_key": key},
            )
        )
        return _webhook_endpoint(we)

    async def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        enabled_events: Sequence[str],
        description: str,
        metadata: dict[str, str],
    ) -> WebhookEndpoint:
        """Replace the subscribed events (and re-enable). `connect` and `api_version` cannot be
        changed by an update; Stripe keeps what the endpoint was created with."""
        params = {
            "enabled_events": list(enabled_events),
            "disabled": False,
            "description": description,
            "metadata": metadata,
        }
        key = f"webhook-endpoint:{endpoint_id}:update:{_digest(params)}"
        we = await self._call(
            self._client.v1.webhook_endpoints.update_async(
                endpoint_id,
                params=cast(stripe.params.WebhookEndpointUpdateParams, params),
                options={"idempotency_key": key},
            )
        )
        return _webhook_endpoint(we)

    async def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        """Delete an endpoint (after its replacement was created: `stripe-webhooks --recreate`)."""
        await self._call(self._client.v1.webhook_endpoints.delete_async(endpoint_id))


def _known_event_types() -> frozenset[str]:
    """Every event type the pinned SDK lets an endpoint subscribe to (its `Literal` list)."""
    annotation = stripe.params.WebhookEndpointCreateParams.__annotations__["enabled_events"]
    (literal,) = typing.get_args(annotation)
    return frozenset(str(t) for t in typing.get_args(literal) if t != "*")


STRIPE_EVENT_TYPES: frozenset[str] = _known_event_types()


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: str
    url: str
    enabled_events: tuple[str, ...]
    status: str  # enabled | disabled
    api_version: str | None
    metadata: dict[str, str]
    secret: str | None  # only in the answer to a create


def _digest(params: dict[str, Any]) -> str:
    """Idempotency keys of endpoint writes: the same request (same parameters) is the same key."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]


def _webhook_endpoint(we: stripe.WebhookEndpoint) -> WebhookEndpoint:
    data = we.to_dict()
    return WebhookEndpoint(
        id=str(data["id"]),
        url=str(data.get("url") or ""),
        enabled_events=tuple(str(e) for e in data.get("enabled_events") or ()),
        status=str(data.get("status") or "enabled"),
        api_version=data.get("api_version"),
        metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
        secret=data.get("secret"),
    )
