from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from marketplace_api.webhooks.models import EventStatus


class WebhookReceipt(BaseModel):
    """What Stripe gets back once the event is stored (whatever applying it did)."""

    received: bool = True
    id: str = Field(description="The Stripe event id.")
    status: EventStatus = Field(
        description="`processed`, `ignored` (no handler for the type), `pending` (deferred or "
        "being applied elsewhere; our retry job applies it), `mismatched` (it disagrees with the "
        "object we recorded: nothing changed, the operator is alerted) or `failed`."
    )
    duplicate: bool = Field(description="The event had been received before.")


class StripeEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    type: str
    account: str | None = Field(description="The connected account (Connect events only).")
    livemode: bool
    api_version: str | None
    created: datetime = Field(description="When Stripe created the event.")
    status: EventStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    processed_at: datetime | None
    received_at: datetime = Field(validation_alias="created_at")
    updated_at: datetime


class StripeEventDetail(StripeEventRead):
    payload: dict[str, Any] = Field(description="The event exactly as Stripe sent it.")


class StripeEventPage(BaseModel):
    items: list[StripeEventRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next (older) page; null on the last page."
    )
