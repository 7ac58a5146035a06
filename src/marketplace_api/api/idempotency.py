"""FastAPI glue for `Idempotency-Key` (routers only; services stay framework-free).

A route takes `idem: Idempotent` and answers `await idem.run(user.id, body, handler)`: the
handler receives the key's context (None without a key) and hands it to the service, which binds
what it creates to the key in the same transaction and resumes it on a retry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.deps import SessionDep
from marketplace_api.errors import PROBLEM_CONTENT_TYPE
from marketplace_api.idempotency.exceptions import (
    IdempotencyKeyInUse,
    IdempotencyKeyLost,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
)
from marketplace_api.idempotency.service import Handler, IdempotentResult, run_idempotent
from marketplace_api.inputs import Text

# For a route's `responses=`: the problems an Idempotency-Key can add.
IDEMPOTENCY_ERRORS = (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    IdempotencyKeyLost,
)

IdempotencyKeyHeader = Annotated[
    Text | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description=(
            "Any unique string (e.g. a UUID) per logical request. Retrying with the same key and "
            "body replays the first answer, or — if the first attempt died or failed with a 5xx "
            "— resumes what it created (never creating it twice); another body → 422 "
            "`idempotency_key_reused`; while the first is running → 409 "
            "`idempotency_key_in_use`. Kept at least 24 hours."
        ),
    ),
]


def to_response(result: IdempotentResult) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    media_type = PROBLEM_CONTENT_TYPE if result.status >= 400 else "application/json"
    return JSONResponse(
        result.body, status_code=result.status, headers=headers, media_type=media_type
    )


@dataclass(frozen=True, slots=True)
class Idempotency:
    """The request's `Idempotency-Key` (if any), ready to run a route's handler under it."""

    session: AsyncSession
    key: str | None
    method: str
    path: str
    now: datetime

    async def run(
        self,
        user_id: uuid.UUID,
        body: BaseModel | None,
        handler: Handler,
        *,
        status_code: int = 200,
    ) -> JSONResponse:
        result = await run_idempotent(
            self.session,
            user_id=user_id,
            key=self.key,
            method=self.method,
            path=self.path,
            body=body.model_dump(mode="json") if body is not None else None,
            status_code=status_code,
            handler=handler,
            now=self.now,
        )
        return to_response(result)


async def get_idempotency(
    request: Request, session: SessionDep, idempotency_key: IdempotencyKeyHeader = None
) -> Idempotency:
    return Idempotency(
        session, idempotency_key, request.method, request.url.path, datetime.now(UTC)
    )


Idempotent = Annotated[Idempotency, Depends(get_idempotency)]
