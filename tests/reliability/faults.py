"""Faults at the Stripe boundary, and a crash between Stripe and our database.

`FAULTS` parametrizes every fault-injection test over the four ways a Stripe call fails in
production: a 5xx, a 429, a read timeout and a connection reset. `flaky(fault, handler)` is a respx
side effect that fails the first `times` calls with the fault and then answers like Stripe, so one
test sees the failed attempt AND the retry in `route.calls` and can compare their
`Idempotency-Key` headers and form bodies.

`CommitCrash` makes the next `COMMIT` of a session fail once it is armed; `arming(handler, crash)`
arms it when the respx route has answered 200. That is a process dying after Stripe did the work
and before our row recorded it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tests.fixtures.stripe import form, stripe_error

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass(frozen=True)
class Fault:
    id: str
    code: str  # the problem code the API answers (503 + Retry-After for all four)
    response: Callable[[], httpx.Response] | None = None
    exception: Callable[[httpx.Request], Exception] | None = None

    def fail(self, request: httpx.Request) -> httpx.Response:
        if self.exception is not None:
            raise self.exception(request)
        assert self.response is not None
        return self.response()


FAULTS = [
    pytest.param(
        Fault(
            "http500", "stripe_unavailable", response=lambda: stripe_error(500, type_="api_error")
        ),
        id="http500",
    ),
    pytest.param(
        Fault(
            "http429",
            "stripe_rate_limited",
            response=lambda: stripe_error(429, code="rate_limit", message="Too many requests"),
        ),
        id="http429",
    ),
    pytest.param(
        Fault(
            "timeout",
            "stripe_unavailable",
            exception=lambda r: httpx.ReadTimeout("The read operation timed out", request=r),
        ),
        id="timeout",
    ),
    pytest.param(
        Fault(
            "reset",
            "stripe_unavailable",
            exception=lambda r: httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=r
            ),
        ),
        id="reset",
    ),
]


def flaky(fault: Fault, handler: Handler, *, times: int = 1) -> Handler:
    """Fail the first `times` requests with `fault`, then answer with `handler`."""
    seen = 0

    def respond(request: httpx.Request) -> httpx.Response:
        nonlocal seen
        seen += 1
        if seen <= times:
            return fault.fail(request)
        return handler(request)

    return respond


def keys(route: Any) -> list[str]:
    """The `Idempotency-Key` of every call to a respx route, in order."""
    return [call.request.headers.get("Idempotency-Key", "") for call in route.calls]


def bodies(route: Any) -> list[dict[str, str]]:
    return [form(call.request) for call in route.calls]


def successes(route: Any) -> int:
    """Calls Stripe answered 2xx (the only ones that may have moved money)."""
    return sum(
        1
        for call in route.calls
        if call.optional_response is not None and call.optional_response.is_success
    )


def assert_problem(response: httpx.Response, fault: Fault) -> None:
    """The documented answer to Stripe being unavailable: 503 problem+json with Retry-After."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == fault.code
    assert int(response.headers["Retry-After"]) > 0


# --- crash between Stripe and the DB -----------------------------------------------------------


class SimulatedCrash(RuntimeError):
    """The process died between Stripe's answer and our COMMIT."""


class CommitCrash:
    """Once armed, the session's next COMMIT raises `SimulatedCrash` (nothing is committed)."""

    def __init__(self) -> None:
        self.armed = False
        self.fired = 0

    def arm(self) -> None:
        self.armed = True

    def before_commit(self, _session: Session) -> None:
        if self.armed:
            self.armed = False
            self.fired += 1
            raise SimulatedCrash("crashed after Stripe answered, before the commit")


@contextmanager
def crash_on_commit(session: AsyncSession) -> Iterator[CommitCrash]:
    crash = CommitCrash()
    event.listen(session.sync_session, "before_commit", crash.before_commit)
    try:
        yield crash
    finally:
        event.remove(session.sync_session, "before_commit", crash.before_commit)


def arming(handler: Handler, crash: CommitCrash, *, times: int = 1) -> Handler:
    """Answer with `handler`; the first `times` answers arm the crash of the next commit."""
    seen = 0

    def respond(request: httpx.Request) -> httpx.Response:
        nonlocal seen
        seen += 1
        response = handler(request)
        if seen <= times:
            crash.arm()
        return response

    return respond


def stable_id(prefix: str, request: httpx.Request) -> str:
    """What Stripe does with a replayed Idempotency-Key: the same object, so the same id."""
    key = request.headers.get("Idempotency-Key", "")
    return f"{prefix}_{uuid.uuid5(uuid.NAMESPACE_URL, key).hex[:24]}"
