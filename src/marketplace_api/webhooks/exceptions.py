"""Problems of the webhook pipeline. None of them ever carries the event's payload."""

from __future__ import annotations

from marketplace_api.errors import Conflict, NotFound, ProblemError, ServiceUnavailable


class InvalidSignature(ProblemError):
    """Missing, malformed or non-matching `Stripe-Signature`, a stale timestamp, a tampered body,
    or no signing secret configured at all (a 400, as every `ProblemError` by default)."""

    code = "invalid_signature"
    title = "Invalid Stripe signature"


class InvalidPayload(ProblemError):
    """Correctly signed, but not a Stripe event we can read (not JSON, no id/type/created)."""

    code = "invalid_payload"
    title = "Invalid event payload"


class EventStoreUnavailable(ServiceUnavailable):
    """The event could not be stored: Stripe must deliver it again."""

    code = "event_store_unavailable"
    title = "The event could not be stored"
    default_detail = "The event was not stored; deliver it again."
    default_headers = {"Retry-After": "5"}


class EventNotFound(NotFound):
    code = "event_not_found"
    title = "Stripe event not found"


class EventAlreadyProcessed(Conflict):
    code = "event_already_processed"
    title = "The event was already processed"
