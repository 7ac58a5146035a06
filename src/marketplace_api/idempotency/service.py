"""`Idempotency-Key` for the API's own clients, with Stripe's semantics, per user.

* First request with a key: a record is inserted; while the request runs it holds the key's
  PostgreSQL advisory lock (a transaction-level lock on a connection of its own), which dies
  with its holder: a crashed process's key is free again as soon as PostgreSQL sees its
  connection close (at once for a killed process), and a live holder, however slow, is never
  pre-empted (no lease to outlive).
* Same key, same request (method, path and canonical JSON body): the stored answer is replayed
  (header `Idempotent-Replayed: true`), whatever happened since; nothing runs again.
* Same key, another request: 422 `idempotency_key_reused`.
* Same key while the first request is still running: 409 `idempotency_key_in_use`.
* What the request creates is bound to the key in the transaction that creates it
  (`IdempotencyContext.bind`): the record's `resource_ids`. A retry after a crash or a 5xx gets
  them back (`context.resource_ids`) and resumes those rows; it never creates a second one.
* Answers are stored when final: 2xx and 4xx. A 5xx (e.g. Stripe unavailable) is not stored: the
  key is unlocked and the next retry runs again, resuming from the bound resources.
* Records are kept `RETENTION` (24 h) at least; `prune_idempotency_keys` deletes older ones.

Routers use the `Idempotent` dependency of `api/idempotency.py` (`await idem.run(user_id, body,
handler, status_code=201)`); the handler passes the context down to the service that creates the
rows.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import cast, delete, event, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.types import Uuid

from marketplace_api import crashpoints
from marketplace_api.errors import ProblemError, problem_response
from marketplace_api.idempotency.exceptions import (
    IdempotencyKeyInUse,
    IdempotencyKeyLost,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
)
from marketplace_api.idempotency.models import IdempotencyKey

RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255


def fingerprint(method: str, path: str, body: Any) -> str:
    """sha256 of the method, the path and the body as canonical JSON (key order and whitespace
    do not matter; values do)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


@dataclass
class IdempotencyContext:
    record_id: uuid.UUID
    resource_ids: list[uuid.UUID]
    # When this attempt took the key (the record's `locked_at`). A retry that takes the key over
    # (this attempt's lock connection died while it still ran) writes its own: this attempt's
    # binds then find no row and fail, so it cannot create a second resource beside the retry's.
    attempt: datetime | None = None

    @property
    def resource_id(self) -> uuid.UUID | None:
        """The first bound resource (routes that create one row)."""
        return self.resource_ids[0] if self.resource_ids else None

    async def bind(self, session: AsyncSession, *resource_ids: uuid.UUID) -> None:
        """Bind rows the request creates to its key, in the caller's transaction (atomic with
        the rows: both are committed, or neither)."""
        bound = await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == self.record_id, *self._still_ours())
            .values(
                resource_ids=IdempotencyKey.resource_ids.op("||")(_uuid_array(list(resource_ids)))
            )
            .returning(IdempotencyKey.id)
        )
        if bound.first() is None:
            raise IdempotencyKeyLost()
        self.resource_ids.extend(resource_ids)
        if crashpoints.enabled():
            event.listen(
                session.sync_session,
                "after_commit",
                lambda _: crashpoints.reached("resource_committed"),
                once=True,
            )

    def _still_ours(self) -> list[Any]:
        return [] if self.attempt is None else [IdempotencyKey.locked_at == self.attempt]


def _uuid_array(ids: list[uuid.UUID]) -> Any:
    return cast(literal(ids, ARRAY(Uuid())), ARRAY(Uuid()))


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: Any


def lock_id(user_id: uuid.UUID, key: str) -> int:
    """The key's advisory lock id: 64 bits of sha256 (a collision only makes a request wait)."""
    digest = hashlib.sha256(f"idempotency:{user_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _engine_of(session: AsyncSession) -> AsyncEngine:
    bind = session.bind
    if isinstance(bind, AsyncConnection):
        return bind.engine
    if isinstance(bind, AsyncEngine):
        return bind
    raise RuntimeError("an idempotent request needs a session bound to one engine")


# Key locks are held on connections of a pool of their own. On the request's own pool, N keyed
# requests each holding a session connection while waiting for a lock connection would exhaust
# it and stall every request. Their size bounds how many keyed requests run at once per process.
LOCK_POOL_SIZE = 20
_lock_engines: weakref.WeakKeyDictionary[Any, AsyncEngine] = weakref.WeakKeyDictionary()


async def dispose_lock_engine(engine: AsyncEngine) -> None:
    """Close the key-lock connections kept for `engine` (at shutdown, beside `engine.dispose()`)."""
    lock_engine = _lock_engines.pop(engine.sync_engine, None)
    if lock_engine is not None:
        await lock_engine.dispose()


def _lock_engine(session: AsyncSession) -> AsyncEngine:
    engine = _engine_of(session)
    lock_engine = _lock_engines.get(engine.sync_engine)
    if lock_engine is None:
        lock_engine = create_async_engine(
            engine.url,
            pool_size=LOCK_POOL_SIZE,
            max_overflow=0,
            pool_recycle=1800,
            hide_parameters=True,
            connect_args={
                "server_settings": {
                    # A holder whose host vanished (no FIN) frees its key within about a minute,
                    # not after the kernel's two-hour keepalive default.
                    "tcp_keepalives_idle": "30",
                    "tcp_keepalives_interval": "10",
                    "tcp_keepalives_count": "3",
                    # The lock's transaction is idle while the request runs: never cut it.
                    "idle_in_transaction_session_timeout": "0",
                    "application_name": "marketplace-api-keys",
                }
            },
        )
        _lock_engines[engine.sync_engine] = lock_engine
    return lock_engine


async def _lock(engine: AsyncEngine, user_id: uuid.UUID, key: str) -> AsyncConnection:
    """Take the key's transaction-level advisory lock on a connection of its own, and keep that
    transaction open while the request runs. The lock ends with the transaction: when the request
    ends (rollback), when the connection goes back to the pool (its reset rolls back), and when
    the process or its connection dies (PostgreSQL ends the backend). 409 when it is held."""
    connection = await engine.connect()
    try:
        held = await connection.scalar(
            text("SELECT pg_try_advisory_xact_lock(:lock_id)"),
            {"lock_id": lock_id(user_id, key)},
        )
    except BaseException:
        await connection.close()
        raise
    if not held:
        await connection.close()
        raise IdempotencyKeyInUse()
    return connection


async def _unlock(connection: AsyncConnection) -> None:
    try:
        await connection.rollback()
    finally:
        await connection.close()


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
    """With the key's lock held by the caller: create or read its record (committed), or return
    the stored answer to replay."""
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
        record.response_status = record.response_body = None
        record.resource_ids = []
    if record.request_hash != request_hash:
        await session.rollback()
        raise IdempotencyKeyReused()
    if record.response_status is not None:
        stored = StoredResponse(record.response_status, record.response_body)
        await session.rollback()
        return stored
    record.locked_at = now  # this attempt's mark: see IdempotencyContext.attempt
    context = IdempotencyContext(record.id, list(record.resource_ids), attempt=now)
    await session.commit()
    return context


async def complete(
    session: AsyncSession, context: IdempotencyContext, status: int, body: Any
) -> None:
    # An attempt that lost its key to a retry stores nothing: the retry stores its own answer.
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == context.record_id, *context._still_ours())
        .values(response_status=status, response_body=body, locked_at=None)
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
    """Run `handler` at most once per (user, key) to a final answer; see the module docstring.
    A ProblemError of the handler is re-raised after its answer is stored (4xx); after a 5xx or
    any other exception the key is simply unlocked, its bound resources kept for the retry."""
    if key is None:
        result = await handler(None)
        return IdempotentResult(status_code, result.model_dump(mode="json"), replayed=False)
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidIdempotencyKey(f"An Idempotency-Key is 1 to {MAX_KEY_LENGTH} characters.")
    now = now or datetime.now(UTC)
    # Give the session's connection back while waiting for a lock connection: a request never
    # holds one pool's connection while it waits for the other's.
    await session.commit()
    lock = await _lock(_lock_engine(session), user_id, key)
    try:
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
            raise
        except BaseException:
            await session.rollback()
            raise
        payload = result.model_dump(mode="json")
        await complete(session, acquired, status_code, payload)
        crashpoints.reached("answer_stored")
        return IdempotentResult(status_code, payload, replayed=False)
    finally:
        await _unlock(lock)


async def prune_idempotency_keys(session: AsyncSession, older_than: datetime) -> int:
    """Delete keys created before `older_than` (never younger than `RETENTION`: the cut-off is
    clamped to now - 24 h), except ones whose request started after the cut-off. Returns how many
    were deleted; commits. For the periodic job."""
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
