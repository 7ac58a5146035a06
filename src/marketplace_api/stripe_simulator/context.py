"""What a request carries besides its parameters."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    account: str | None  # `Stripe-Account`: the connected account the request acts on
    publishable: bool  # made with a publishable key (Stripe.js): only client-side calls allowed
    idempotency_key: str | None
    request_id: str

    @property
    def request(self) -> tuple[str | None, str | None]:
        """`event.request` of the events this request causes."""
        return self.request_id, self.idempotency_key
