"""`Idempotency-Key` for the API's own clients, with Stripe's semantics, per user.

* First request with a key: a record is inserted and locked while the request runs.
* Same key, same request (method, path and canonical JSON body): the stored answer is replayed
  (header `Idempotent-Replayed: true`), whatever happened since; nothing runs again.
* Same key, another request: 422 `idempotency_key_reused`.
* Same key while the first request is still running: 409 `idempotency_key_in_use` (a lock older
  than `LOCK_TIMEOUT` is considered abandoned by a crashed process and taken over).
* Answers are stored when final: 2xx and 4xx. A 5xx (e.g. Stripe unavailable) is not stored: the
  key is unlocked and the next retry runs again, resuming from the recovery point
  (`resource_id`, e.g. the payment the first attempt committed) instead of starting over.
* Records are kept `RETENTION` (24 h) at least; `prune_idempotency_keys` deletes older ones.

Reuse for any money-moving POST: `run_idempotent(session, user_id=..., key=..., method=...,
path=..., body=..., status_code=201, handler=...)` from the router (see `api/v1/buyer/orders.py`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.errors import ProblemError, problem_response
from marketplace_api.idempotency.exceptions import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
)
from marketplace_api.idempotency.models import IdempotencyKey

RETENTION = timedelta(hours=24)
LOCK_TIMEOUT = timedelta(minutes=2)
MAX_KEY_LENGTH = 255


def fingerprint(method: str, path: str, body: Any) -> str:
    """sha256 of the method, the path and the body as canonical JSON (key order and whitespace
    do not matter; values do)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


@dataclass
class IdempotencyContext:
    record_id: uuid.UUID
    resource_id: uuid.UUID | None

    async def bind_resource(self, session: AsyncSession, resource_id: uuid.UUID) -> None:
        """Record the recovery point in the caller's transaction (atomic with the resource)."""
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == self.record_id)
            .values(resource_id=resource_id)
        )
        self.resource_id = resource_id


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: Any


async def acquire(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str,
    method: str,
    path: str,
    request_hash: str,
    now: datetime,
) -> IdempotencyContext | StoredResponse:
    """Lock the key for this request (committed), or return the stored answer to replay."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidIdempotencyKey(f"An Idempotency-Key is 1 to {MAX_KEY_LENGTH} characters.")
    await session.execute(
        insert(IdempotencyKey)
        .values(
            id=uuid.uuid4(),
            user_id=user_id,
            key=key,
            request_method=method.upper(),
            request_path=path,
            request_hash=request_hash,
            locked_at=None,
            created_at=now,
            expires_at=now + RETENTION,
        )
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
    )
    record = (
        await session.execute(
            select(IdempotencyKey)
            .where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    if record.expires_at <= now:  # past retention: the key starts a new life
        record.request_method, record.request_path = method.upper(), path
        record.request_hash, record.created_at = request_hash, now
        record.expires_at = now + RETENTION
        record.response_status = record.response_body = record.resource_id = None
        record.locked_at = None
    if record.request_hash != request_hash:
        await session.rollback()
        raise IdempotencyKeyReused()
    if record.response_status is not None:
        stored = StoredResponse(record.response_status, record.response_body)
        await session.rollback()
        return stored
    if record.locked_at is not None and record.locked_at > now - LOCK_TIMEOUT:
        await session.rollback()
        raise IdempotencyKeyInUse()
    record.locked_at = now
    context = IdempotencyContext(record.id, record.resource_id)
    await session.commit()
    return context


async def complete(
    session: AsyncSession, context: IdempotencyContext, status: int, body: Any
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == context.record_id)
        .values(response_status=status, response_body=body, locked_at=None)
    )
    await session.commit()


async def release(session: AsyncSession, context: IdempotencyContext) -> None:
    """Unlock without an answer: the next retry runs again from the recovery point."""
    await session.execute(
        update(IdempotencyKey).where(IdempotencyKey.id == context.record_id).values(locked_at=None)
    )
    await session.commit()


def _problem_body(exc: ProblemError, path: str) -> Any:
    response = problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=path,
        extra=exc.extra,
    )
    return json.loads(bytes(response.body))


@dataclass(frozen=True, slots=True)
class IdempotentResult:
    status: int
    body: Any
    replayed: bool


Handler = Callable[[IdempotencyContext | None], Awaitable[BaseModel]]


async def run_idempotent(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str | None,
    method: str,
    path: str,
    body: Any,
    status_code: int,
    handler: Handler,
    now: datetime | None = None,
) -> IdempotentResult:
    """Run `handler` at most once per (user, key); see the module docstring. A ProblemError of
    the handler is re-raised after its answer is stored (4xx) or the key unlocked (5xx)."""
    if key is None:
        result = await handler(None)
        return IdempotentResult(status_code, result.model_dump(mode="json"), replayed=False)
    now = now or datetime.now(UTC)
    acquired = await acquire(
        session,
        user_id=user_id,
        key=key,
        method=method,
        path=path,
        request_hash=fingerprint(method, path, body),
        now=now,
    )
    if isinstance(acquired, StoredResponse):
        return IdempotentResult(acquired.status, acquired.body, replayed=True)
    try:
        result = await handler(acquired)
    except ProblemError as exc:
        await session.rollback()
        if exc.status < 500:
            await complete(session, acquired, exc.status, _problem_body(exc, path))
        else:
            await release(session, acquired)
        raise
    except BaseException:
        await session.rollback()
        await release(session, acquired)
        raise
    payload = result.model_dump(mode="json")
    await complete(session, acquired, status_code, payload)
    return IdempotentResult(status_code, payload, replayed=False)


async def prune_idempotency_keys(session: AsyncSession, older_than: datetime) -> int:
    """Delete keys created before `older_than` (never younger than `RETENTION`: the cut-off is
    clamped to now - 24 h), except ones still locked by a running request. Returns how many were
    deleted; commits. For the periodic job."""
    cutoff = min(older_than, datetime.now(UTC) - RETENTION)
    result = await session.execute(
        delete(IdempotencyKey)
        .where(
            IdempotencyKey.created_at < cutoff,
            (IdempotencyKey.locked_at.is_(None)) | (IdempotencyKey.locked_at < cutoff),
        )
        .returning(IdempotencyKey.id)
    )
    count = len(result.all())
    await session.commit()
    return count
