"""One error shape for every error: RFC 9457 `application/problem+json` with a stable `code`.

Domain code raises `ProblemError` subclasses (never FastAPI's `HTTPException`); the handlers
installed by `install_error_handlers` render them, and also render the framework's own 404/405/422
and any unexpected exception in the same shape, without stack traces or secrets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from marketplace_api.asgi import HTTPMiddleware, StartTrackingSend

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://docs.marketplace-api.dev/problems/"


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where the error is, e.g. ['body', 'items', 0].")
    msg: str
    type: str


class Problem(BaseModel):
    """The body of every error response."""

    type: str = Field(examples=[PROBLEM_TYPE_BASE + "not_found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    code: str = Field(description="Stable machine-readable error code.", examples=["not_found"])
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="Field errors (validation problems only)."
    )

    model_config = {"extra": "allow"}


class ProblemError(Exception):
    """Base of every domain error. Subclasses set `status`, `code` and `title`."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"
    # For a problem that always says the same: the detail and headers of a raise that names none.
    default_detail: ClassVar[str | None] = None
    default_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        detail = detail or self.default_detail
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = {**self.default_headers, **(headers or {})}
        self.extra = extra


class NotFound(ProblemError):
    status = 404
    code = "not_found"
    title = "Not found"


class Unauthorized(ProblemError):
    status = 401
    code = "not_authenticated"
    title = "Not authenticated"
    default_headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(ProblemError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class Conflict(ProblemError):
    status = 409
    code = "conflict"
    title = "Conflict"


class UnprocessableEntity(ProblemError):
    status = 422
    code = "unprocessable"
    title = "Unprocessable request"


class PayloadTooLarge(ProblemError):
    status = 413
    code = "payload_too_large"
    title = "Request body too large"


class ServiceUnavailable(ProblemError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = list(errors)
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_CONTENT_TYPE
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


async def _handle_problem(request: Request, exc: ProblemError) -> JSONResponse:
    return problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        headers=exc.headers,
        extra=exc.extra,
    )


async def _handle_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    code = _HTTP_CODES.get(status, f"http_{status}")
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    return problem_response(
        status=status,
        code=code,
        title=phrase,
        detail=detail,
        instance=request.url.path,
        headers=exc.headers,
    )


def _jsonable_loc(loc: Sequence[Any]) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in loc]


async def _handle_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {"loc": _jsonable_loc(e.get("loc", ())), "msg": e.get("msg", ""), "type": e["type"]}
        for e in exc.errors()
    ]
    return problem_response(
        status=422,
        code="validation_error",
        title="Request validation failed",
        detail="One or more fields are invalid.",
        instance=request.url.path,
        errors=errors,
    )


# Set on an exception `UnhandledErrorMiddleware` has already logged and answered.
_RENDERED = "_marketplace_problem_rendered"


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    title = "Database unavailable"


# Seconds a client should wait after losing the database (a restart takes a few seconds).
DATABASE_RETRY_AFTER = 2


_DRIVER_PATHS = (f"{os.sep}asyncpg{os.sep}", f"{os.sep}sqlalchemy{os.sep}")


def _raised_by_database_driver(exc: BaseException) -> bool:
    return any(
        any(part in frame.f_code.co_filename for part in _DRIVER_PATHS)
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def _lost_database(exc: BaseException) -> bool:
    """The database connection was lost or refused (restart, failover, connection limit), as
    opposed to a bug: the request may be retried once the database is back."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa_exc.TimeoutError):  # no pool connection within pool_timeout
            return True
        if isinstance(
            current,
            asyncpg.PostgresConnectionError  # includes ConnectionDoesNotExistError
            | asyncpg.CannotConnectNowError
            | asyncpg.TooManyConnectionsError
            | asyncpg.AdminShutdownError
            | asyncpg.CrashShutdownError
            | asyncpg.ReadOnlySQLTransactionError,  # a failover left us on a demoted primary
        ):
            return True
        # Refused, reset, unreachable: only when the database driver raised it (a Redis or an
        # SMTP server refusing, or a file not found, is not the database).
        if isinstance(current, OSError) and _raised_by_database_driver(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def _database_unavailable(
    request: Request, exc: BaseException, *, log: bool = True
) -> JSONResponse:
    if log:
        logger.warning(
            "database unavailable", extra={"path": request.url.path, "error": type(exc).__name__}
        )
    return problem_response(
        status=DatabaseUnavailable.status,
        code=DatabaseUnavailable.code,
        title=DatabaseUnavailable.title,
        detail="The database cannot be reached right now; retry shortly.",
        instance=request.url.path,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


async def _handle_database_error(request: Request, exc: Exception) -> JSONResponse:
    """A lost database answers 503; any other database error is a bug: re-raised, so that
    `UnhandledErrorMiddleware` answers the 500, logs it once and the server sees it."""
    if _lost_database(exc):
        return _database_unavailable(request, exc)
    raise exc


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    if _lost_database(exc):
        if getattr(exc, _RENDERED, False):  # answered (and logged) inside the middleware
            return _database_unavailable(request, exc, log=False)
        return _database_unavailable(request, exc)
    if not getattr(exc, _RENDERED, False):
        logger.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="An unexpected error occurred; it has been logged.",
        instance=request.url.path,
    )


class UnhandledErrorMiddleware(HTTPMiddleware):
    """Renders an exception no handler took as the problem+json 500, inside the other middleware.

    Starlette runs an `Exception` handler in its ServerErrorMiddleware, outside every middleware
    the app adds: that 500 would reach a browser without `Access-Control-Allow-Origin` (a bare
    network error to the page) and without the `X-Request-ID` to quote to support. Installed
    first, this middleware is the innermost one, so its answer passes through CORS, the request id
    and the access log like any other. Then, like ServerErrorMiddleware, it raises the exception
    again, so the server still logs it and test clients can still raise it.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracking_send = StartTrackingSend(send)
        try:
            await self.app(scope, receive, tracking_send)
        except StarletteHTTPException:
            raise  # raised outside the router (e.g. the body limit): its middleware answers
        except Exception as exc:
            if tracking_send.started:
                raise  # a stream failed after its headers: nothing can be rendered any more
            response = await _handle_unexpected(Request(scope), exc)
            await response(scope, receive, send)
            with contextlib.suppress(AttributeError):
                setattr(exc, _RENDERED, True)  # logged here, with the request id: not twice
            raise


# Exceptions that may mean a lost database, handled inside the middleware stack (so the 503
# carries the request id and CORS headers like any other answer); others of these classes
# (an IntegrityError nobody caught) are still a 500.
_DATABASE_ERRORS = (
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem handlers, and `UnhandledErrorMiddleware`: call this before adding any
    other middleware, so that it is the innermost."""
    # Starlette types handlers as taking `Exception`; each is registered for its own class.
    app.add_exception_handler(ProblemError, _handle_problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _handle_http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _handle_validation)  # type: ignore[arg-type]
    app.add_middleware(UnhandledErrorMiddleware)
    for database_error in _DATABASE_ERRORS:
        app.add_exception_handler(database_error, _handle_database_error)
    # Last resort, for a failure inside a middleware itself (outside CORS and the request id).
    app.add_exception_handler(Exception, _handle_unexpected)


def problem_responses(*errors: type[ProblemError]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: documents each expected problem with its status and code."""
    by_status: dict[int, list[type[ProblemError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, group in sorted(by_status.items()):
        codes = ", ".join(f"`{e.code}`" for e in group)
        responses[status] = {
            "description": f"{group[0].title if len(group) == 1 else HTTPStatus(status).phrase}"
            f" ({codes})",
            # The content (application/problem+json, `Problem`) is filled in by openapi.py.
        }
    return responses
