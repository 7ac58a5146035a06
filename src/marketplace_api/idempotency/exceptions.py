from __future__ import annotations

from marketplace_api.errors import Conflict, UnprocessableEntity


class IdempotencyKeyReused(UnprocessableEntity):
    code = "idempotency_key_reused"
    title = "Idempotency-Key already used for another request"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was used with a different request (method, path or body). "
            "Use a new key for a new request."
        )


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    title = "A request with this Idempotency-Key is in progress"

    def __init__(self) -> None:
        super().__init__(
            "Another request with this Idempotency-Key has not finished; retry it later.",
            headers={"Retry-After": "1"},
        )


class InvalidIdempotencyKey(UnprocessableEntity):
    code = "invalid_idempotency_key"
    title = "Invalid Idempotency-Key"
