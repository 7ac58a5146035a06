"""FastAPI glue for `Idempotency-Key` (routers only; services stay framework-free)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header
from fastapi.responses import JSONResponse

from marketplace_api.errors import PROBLEM_CONTENT_TYPE
from marketplace_api.idempotency.exceptions import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
)
from marketplace_api.idempotency.service import IdempotentResult
from marketplace_api.inputs import Text

# For a route's `responses=`: the problems an Idempotency-Key can add.
IDEMPOTENCY_ERRORS = (IdempotencyKeyInUse, IdempotencyKeyReused, InvalidIdempotencyKey)

IdempotencyKeyHeader = Annotated[
    Text | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description=(
            "Any unique string (e.g. a UUID) per logical request. Retrying with the same key and "
            "body replays the first answer; another body → 422 `idempotency_key_reused`; while "
            "the first is running → 409 `idempotency_key_in_use`. Kept at least 24 hours."
        ),
    ),
]


def to_response(result: IdempotentResult) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    media_type = PROBLEM_CONTENT_TYPE if result.status >= 400 else "application/json"
    return JSONResponse(
        result.body, status_code=result.status, headers=headers, media_type=media_type
    )
