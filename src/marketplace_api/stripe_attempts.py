"""Calling Stripe for a row: claim it, call, record the answer — the one shape of every money
movement we start (transfers, transfer reversals, refunds).

1. `claim`: a conditional UPDATE pushes the row's `next_attempt_at` one lease ahead. Two workers
   (or a request and the retry job) never call Stripe for the same row at the same moment, and a
   crashed caller's row becomes due again when the lease runs out.
2. `call`: commits first, so no transaction is open while Stripe works, then makes the call with
   an idempotency key derived from the row: even an overlapping retry cannot move money twice.
3. Still in `call`: the answer (or the failure, sorted into transient and final) is recorded by
   the caller's callback in a new transaction, which `call` commits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.db import UUIDPrimaryKey
from marketplace_api.errors import ProblemError
from marketplace_api.integrations.stripe import StripeUnavailable

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=6)
MAX_ERROR_LENGTH = 2000

Answer = TypeVar("Answer")
Row = TypeVar("Row", bound=UUIDPrimaryKey)


def backoff(
    attempts: int, *, base: timedelta = BACKOFF_BASE, cap: timedelta = BACKOFF_CAP
) -> timedelta:
    """Delay after `attempts` failed attempts: base, 2·base, 4·base, … capped at `cap` (by
    default 1 min, 2, 4, … 6 h)."""
    delay: timedelta = base * 2 ** min(max(attempts - 1, 0), 20)
    return min(delay, cap)


def next_attempt(now: datetime, attempts: int) -> datetime:
    return now + backoff(attempts)


def is_transient(exc: ProblemError) -> bool:
    """Timeouts, 5xx, rate limits: Stripe may have done it; retry with the SAME key.
    Anything else (4xx: invalid request, permission) was refused: nothing was created."""
    return isinstance(exc, StripeUnavailable)


def describe(exc: ProblemError) -> str:
    code = exc.extra.get("stripe_code")
    text = f"{exc.code}{f' ({code})' if code else ''}: {exc.detail or exc.title}"
    return text[:MAX_ERROR_LENGTH]


@dataclass(frozen=True)
class Failure:
    """A Stripe call that raised. `transient`: Stripe may have made it (retry with the same key);
    otherwise it was refused and nothing was created."""

    error: ProblemError
    transient: bool

    def values(self, tries: int, now: datetime) -> dict[str, Any]:
        """The row's columns after its `tries`-th failed attempt: the count, the error, and when
        the retry job may try again."""
        return {
            "attempts": tries,
            "last_error": describe(self.error),
            "next_attempt_at": next_attempt(now, tries),
        }


def due(model: Any, now: datetime) -> ColumnElement[bool]:
    """Rows never leased, or whose lease (or backoff) has run out."""
    condition: ColumnElement[bool] = or_(
        model.next_attempt_at.is_(None), model.next_attempt_at <= now
    )
    return condition


def due_for_retry(model: Any, now: datetime) -> ColumnElement[bool]:
    """Due for the retry job: leased or backed off until now at the latest, or never leased but
    older than a lease (a row a request has just written is about to be claimed by it)."""
    condition: ColumnElement[bool] = or_(
        model.next_attempt_at <= now,
        model.next_attempt_at.is_(None) & (model.created_at <= now - LEASE),
    )
    return condition


async def claim(
    session: AsyncSession,
    model: type[Row],
    row_id: uuid.UUID,
    *where: ColumnElement[bool],
    now: datetime,
    resume: bool = False,
) -> tuple[Row, bool]:
    """Take the row's lease if it is due and matches `where`. Returns the row as it is now, and
    True for the one caller that took the lease. Does not commit: the caller reads what its call
    needs, and `call` commits before Stripe (or the caller commits and leaves).

    `resume`: taken over without waiting for another caller's lease (the retry of the API request
    whose attempt died; the Stripe key makes an overlapping call replay the first)."""
    result = await session.execute(
        update(model)
        .where(model.id == row_id, *where, *([] if resume else [due(model, now)]))
        .values(next_attempt_at=now + LEASE)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    claimed = result.first() is not None
    return await reload(session, model, row_id), claimed


async def call(
    session: AsyncSession,
    what: str,
    request: Callable[[], Awaitable[Answer]],
    *,
    ids: Mapping[str, str],
    record: Callable[[Answer], Awaitable[object]],
    record_failure: Callable[[Failure], Awaitable[object]],
) -> Failure | None:
    """Commit (the claim and the caller's reads), make the Stripe `request` with no transaction
    open, then record its answer, or its failure, and commit that. Returns the failure, if any.

    `what` and `ids` name the attempt in the warning of a failed call."""
    await session.commit()
    try:
        answer = await request()
    except ProblemError as exc:
        failure = Failure(exc, is_transient(exc))
        logger.warning(
            "stripe %s failed",
            what,
            extra={**ids, "error": exc.code, "transient": failure.transient},
        )
        await record_failure(failure)
        await session.commit()
        return failure
    await record(answer)
    await session.commit()
    return None


async def reload(session: AsyncSession, model: type[Row], row_id: uuid.UUID) -> Row:
    """The row as the database has it now: a webhook or the retry job may have moved it since
    this session last read it."""
    result = await session.execute(
        select(model).where(model.id == row_id).execution_options(populate_existing=True)
    )
    return result.scalar_one()
