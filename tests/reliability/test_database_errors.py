"""A lost or refused database connection answers 503 `database_unavailable` with Retry-After;
any other database error is still a 500 (a bug)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from marketplace_api.config import Settings
from marketplace_api.deps import AppState
from marketplace_api.main import create_app
from tests.conftest import build_state
from tests.reliability.processes import free_port

PROBLEM = "application/problem+json"


def _wrapped(
    cls: type[sa_exc.DBAPIError], orig: BaseException, *, invalidated: bool = False
) -> sa_exc.DBAPIError:
    return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)  # type: ignore[arg-type]


LOST = {
    "closed mid-query": _wrapped(
        sa_exc.InterfaceError,
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        invalidated=True,
    ),
    "reset": _wrapped(
        sa_exc.OperationalError, ConnectionResetError(104, "reset by peer"), invalidated=True
    ),
    "admin shutdown": _wrapped(
        sa_exc.OperationalError,
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    ),
    "starting up": _wrapped(
        sa_exc.OperationalError, asyncpg.CannotConnectNowError("the database is starting up")
    ),
    "too many connections": _wrapped(
        sa_exc.OperationalError, asyncpg.TooManyConnectionsError("too many clients already")
    ),
    "pool timeout": sa_exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
    "raw asyncpg": asyncpg.ConnectionDoesNotExistError("connection was closed"),
}
BUGS = {
    "unique violation": _wrapped(sa_exc.IntegrityError, asyncpg.UniqueViolationError("dup")),
    "syntax": _wrapped(sa_exc.ProgrammingError, asyncpg.PostgresSyntaxError("syntax")),
    "plain bug": RuntimeError("not the database"),
    # Refused or unreachable, but not raised by the database driver (a Redis rate-limit store, an
    # SMTP server, a file): not a lost database, so not hidden as one. A refused database is
    # covered on a real route below.
    "another server refused": ConnectionRefusedError(
        111, "Connect call failed ('127.0.0.1', 6379)"
    ),
    "a file": FileNotFoundError(2, "No such file"),
}


async def _raise(app_state: AppState, error: BaseException) -> httpx.Response:
    app = create_app(state=app_state)
    router = APIRouter()

    @router.get("/fails")
    async def fails() -> None:
        raise error

    app.include_router(router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return await http.get("/fails")


@pytest.mark.parametrize("error", LOST.values(), ids=LOST.keys())
async def test_a_lost_database_connection_is_503_with_retry_after(
    app_state: AppState, error: BaseException
) -> None:
    response = await _raise(app_state, error)

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "database_unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    assert "x-request-id" in response.headers


@pytest.mark.parametrize("error", BUGS.values(), ids=BUGS.keys())
async def test_other_database_errors_are_still_500(
    app_state: AppState, error: BaseException
) -> None:
    response = await _raise(app_state, error)

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "Retry-After" not in response.headers


async def test_a_refused_database_answers_503_on_a_real_route(settings: Settings) -> None:
    nowhere = create_async_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none", poolclass=NullPool
    )
    app = create_app(state=build_state(settings, nowhere))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/v1/platform/listings")
    finally:
        await nowhere.dispose()

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "2"
