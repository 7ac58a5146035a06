"""The envelope of a verified Stripe event: what it must be to be stored.

`parse_event` refuses, before any database work, an event that could never be stored as it is
(`InvalidPayload`, never echoing the payload): retrying it could never succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marketplace_api.integrations.stripe.objects import (
    EventData,
    EventEnvelope,
    StripeObjectInvalid,
    parse_object,
)
from marketplace_api.webhooks.exceptions import InvalidPayload


@dataclass(frozen=True, slots=True)
class NewEvent:
    id: str
    type: str
    account: str | None
    livemode: bool
    api_version: str | None
    created: datetime
    payload: dict[str, Any]  # as Stripe sent it: what is stored
    data: EventData


# Limits of what can be stored: Stripe's objects are a few levels deep and its times fit in 32
# bits; PostgreSQL refuses NUL characters in text and JSONB, and `account` is a String(255).
MAX_PAYLOAD_DEPTH = 64
MAX_CREATED = 2**32
MAX_ACCOUNT_LENGTH = 255


def parse_event(event: dict[str, Any]) -> NewEvent:
    """The columns of a verified Stripe event, or `InvalidPayload` for an event that cannot be
    stored as it is (never echoing the payload). Such an event is refused before any database
    work: retrying it could never succeed."""
    try:
        envelope = parse_object(EventEnvelope, event)
    except StripeObjectInvalid as exc:  # names the fields, never their values
        raise InvalidPayload(f"The event is not a Stripe event ({exc}).") from None
    if not envelope.id or len(envelope.id) > 255:
        raise InvalidPayload("The event has no valid `id`.")
    if not envelope.type or len(envelope.type) > 100:
        raise InvalidPayload("The event has no valid `type`.")
    if not 0 <= envelope.created < MAX_CREATED:
        raise InvalidPayload("The event has no valid `created` timestamp.")
    if envelope.account is not None and len(envelope.account) > MAX_ACCOUNT_LENGTH:
        raise InvalidPayload("The event's `account` is not a connected account id.")
    _check_storable(event)
    return NewEvent(
        id=envelope.id,
        type=envelope.type,
        account=envelope.account or None,
        livemode=envelope.livemode,
        api_version=envelope.api_version[:50] if envelope.api_version is not None else None,
        created=datetime.fromtimestamp(envelope.created, UTC),
        payload=event,
        data=envelope.data,
    )


def _check_storable(event: dict[str, Any]) -> None:
    """No NUL character in any key or string, and no deeper nesting than `MAX_PAYLOAD_DEPTH`
    (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(event, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise InvalidPayload("The event contains a NUL character.")
        elif isinstance(value, dict | list):
            if depth > MAX_PAYLOAD_DEPTH:
                raise InvalidPayload("The event is nested too deeply.")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and "\x00" in key:
                    raise InvalidPayload("The event contains a NUL character.")
                stack.append((item, depth + 1))
