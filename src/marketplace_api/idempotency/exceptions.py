from __future__ import annotations

from marketplace_api.errors import Conflict, ServiceUnavailable, UnprocessableEntity


class IdempotencyKeyReused(UnprocessableEntity):
    code = "idempotency_key_reused"
    title = "Idempotency-Key already used for another request"
    default_detail = (
        "This Idempotency-Key was used with a different request (method, path or body). "
        "Use a new key for a new request."
    )


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    title = "A request with this Idempotency-Key is in progress"
    default_detail = "Another request with this Idempotency-Key has not finished; retry it later."
    default_headers = {"Retry-After": "1"}


class InvalidIdempotencyKey(UnprocessableEntity):
    code = "invalid_idempotency_key"
    title = "Invalid Idempotency-Key"


class IdempotencyKeyLost(ServiceUnavailable):
    """This attempt's hold on its key ended (its lock connection died) and a retry took the key
    over: whatever the attempt was about to create is rolled back; the retry carries on."""

    code = "idempotency_key_lost"
    title = "The request lost its Idempotency-Key to a retry"
    default_detail = (
        "A retry with the same Idempotency-Key took over this request; retry it for the answer."
    )
    default_headers = {"Retry-After": "1"}
