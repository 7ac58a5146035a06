"""Calling Stripe from a row: leases, backoff and which failures may be retried with the same key.

A row (transfer, reversal, refund) is *claimed* before its Stripe call by a conditional UPDATE
that pushes `next_attempt_at` one lease ahead: two workers (or a request and the retry job)
never call Stripe for the same row at the same moment, and a crashed caller's row becomes due
again when the lease runs out. The call itself carries an idempotency key derived from the row,
so even an overlapping retry cannot move money twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from marketplace_api.errors import ProblemError
from marketplace_api.integrations.stripe import StripeUnavailable

LEASE = timedelta(minutes=2)
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=6)
MAX_ERROR_LENGTH = 2000


def backoff(attempts: int) -> timedelta:
    """Delay after `attempts` failed attempts: 1 min, 2, 4, … capped at 6 h."""
    delay: timedelta = BACKOFF_BASE * 2 ** min(max(attempts - 1, 0), 20)
    return min(delay, BACKOFF_CAP)


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
