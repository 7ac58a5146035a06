"""Logs: JSON lines for a collector or readable lines for people, both carrying the request id;
the job queue's periodic ticks at DEBUG; one access-log line per request.

Logs never contain request bodies, Authorization headers, card data or secrets: only the method,
path (without query string), status and duration are logged for a request. Exceptions are logged
with their traceback, but the messages of database, validation and Stripe errors are replaced by
what identifies them (class, SQLSTATE, constraint, field locations): those messages quote the
values involved (`Key (email)=(…)`, `invalid input syntax for type integer: "…"`, `input_value=…`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from types import TracebackType
from typing import Any, Literal, cast

from asgi_correlation_id import CorrelationIdFilter
from pythonjsonlogger.json import JsonFormatter
from starlette.types import Message, Receive, Scope, Send

from marketplace_api import tracing
from marketplace_api.asgi import HTTPMiddleware
from marketplace_api.metrics import observe_request

access_logger = logging.getLogger("marketplace_api.access")


def configure_logging(level: str = "INFO", *, json_logs: bool = True) -> None:
    """Logs on stdout: one JSON object per line (`json_logs`, for a log collector) or one
    readable line per event (development). Both carry the request id, and both log exceptions
    through the redaction below."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(CorrelationIdFilter(name="request_id_filter", uuid_length=32))
    if tracing.configure():  # trace_id / span_id; off, not even a filter call per record
        handler.addFilter(tracing.TraceContextFilter())
    handler.addFilter(RoutineAtDebug())
    handler.setFormatter(build_formatter("json" if json_logs else "text"))
    install_safe_exception_logging()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log repeats ours and includes query strings: silence it.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def build_formatter(log_format: Literal["json", "text"]) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
            rename_fields={"correlation_id": "request_id", "levelname": "level"},
        )
    return TextFormatter()


# What every record has: anything else on a record was passed as `extra` (or by a filter).
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "correlation_id",  # written last, as request_id
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class TextFormatter(logging.Formatter):
    """One line per event for a person: time, level, logger, message, then the record's `extra`
    fields as key=value and the request id when there is one; an exception's traceback (already
    redacted, see `install_safe_exception_logging`) follows on the next lines."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s  %(message)s", "%H:%M:%S"
        )

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = [
            f"{key}={_text_value(value)}"
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
        ]
        request_id = getattr(record, "correlation_id", None)
        if request_id:
            fields.append(f"request_id={request_id}")
        line = super().formatMessage(record)
        return f"{line}  {' '.join(fields)}" if fields else line


def _text_value(value: object) -> str:
    """A value that reads as one token: plain words as they are, anything with spaces, quotes or
    `=` quoted, containers as compact JSON."""
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in "\"'=" for c in value)
        return value if plain else json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    return str(value)


class RoutineAtDebug(logging.Filter):
    """Routine chatter at DEBUG, shown with LOG_LEVEL=DEBUG. Chiefly the job queue's periodic
    ticks: every minute each periodic job is deferred, started and ended by procrastinate, and
    most ticks find nothing to do; a tick that did work, failed or warned keeps its level. Also
    alembic listing its plugins at every start."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not _is_routine(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def _is_routine(record: logging.LogRecord) -> bool:
    # procrastinate's periodic deferrer (registering the jobs, deferring a tick) and alembic's
    # plugin list say the same thing at every start or tick.
    if record.name in ("procrastinate.periodic", "alembic.runtime.plugins"):
        return True
    if record.name.startswith("procrastinate.worker"):
        # procrastinate calls a periodic task with the tick's `timestamp`; the task's own line
        # says what the tick did, so its start and success lines only repeat it.
        job = getattr(record, "job", None)
        kwargs = job.get("task_kwargs") if isinstance(job, dict) else None
        return getattr(record, "action", None) in ("start_job", "job_success") and (
            isinstance(kwargs, dict) and "timestamp" in kwargs
        )
    # Our periodic jobs log what a tick did (`tick`, `count`): a count of 0 is nothing to do.
    return hasattr(record, "tick") and getattr(record, "count", None) == 0


# Exceptions from these packages may quote the values they failed on (statement parameters, a
# column's value, a model's input, a Stripe request's fields): their messages are never logged.
_VALUE_QUOTING_PACKAGES = (
    "sqlalchemy",
    "asyncpg",
    "psycopg",
    "pydantic",
    "pydantic_core",
    "fastapi",  # ResponseValidationError quotes the whole response it refused
    "stripe",
    "aiosmtplib",  # SMTP errors quote recipients' addresses
    "smtplib",
    "jwt",
)
_MAX_MESSAGE = 300
_proxy_types: dict[type[BaseException], type[BaseException]] = {}


class RedactedException(Exception):
    """Stands in for a logged exception: same module, name and traceback, a safe message."""


class RedactedExceptionGroup(ExceptionGroup[Exception], RedactedException):
    """Stands in for a logged exception group, with its members redacted."""


def _withheld(exc: BaseException) -> str:
    """What identifies a value-quoting error without its values."""
    facts: list[str] = []
    for link in (exc, getattr(exc, "orig", None), (getattr(exc, "orig", None) or exc).__cause__):
        for attr in ("sqlstate", "pgcode", "constraint_name", "table_name", "column_name"):
            value = getattr(link, attr, None)
            if isinstance(value, str) and value and f"{attr}={value}" not in facts:
                facts.append(f"{attr}={value}")
    for attr in ("http_status", "code", "param", "request_id"):  # Stripe's errors
        value = getattr(exc, attr, None)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value:
            facts.append(f"{attr}={value}")
    errors = getattr(exc, "errors", None)
    if callable(errors) and type(exc).__name__.endswith("ValidationError"):
        # The facts are a courtesy: gathering them must never raise a new error.
        with contextlib.suppress(Exception):
            facts.extend(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in errors()[:10])
    return "message withheld" + (f" ({', '.join(facts)})" if facts else "")


def _safe_copy(exc: BaseException, seen: dict[int, BaseException]) -> BaseException:
    if id(exc) in seen:
        return seen[id(exc)]
    kind = type(exc)
    proxy_type = _proxy_types.get(kind)
    if proxy_type is None:
        proxy_type = type(
            kind.__name__,
            (RedactedException,),
            {"__module__": kind.__module__, "__qualname__": kind.__qualname__},
        )
        _proxy_types[kind] = proxy_type
    if kind.__module__.split(".")[0] in _VALUE_QUOTING_PACKAGES:
        message = _withheld(exc)
    else:
        # A group's str() already counts its members; the copy counts them again.
        text = exc.message if isinstance(exc, BaseExceptionGroup) else str(exc)
        message = text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "… (cut)"
    copy: BaseException
    if isinstance(exc, BaseExceptionGroup):
        # Keep the group's members (the real causes), each redacted the same way.
        # Every copy is a RedactedException (or group of them): an Exception.
        members = [cast(Exception, _safe_copy(member, seen)) for member in exc.exceptions]
        copy = RedactedExceptionGroup(f"{kind.__qualname__}: {message}", members)
    else:
        copy = proxy_type(message)
    if hasattr(exc, "__notes__"):
        copy.__notes__ = list(exc.__notes__)
    seen[id(exc)] = copy
    copy.__traceback__ = exc.__traceback__
    copy.__suppress_context__ = exc.__suppress_context__
    if exc.__cause__ is not None:
        copy.__cause__ = _safe_copy(exc.__cause__, seen)
    if exc.__context__ is not None:
        copy.__context__ = _safe_copy(exc.__context__, seen)
    return copy


def safe_exc_info(
    exc: BaseException,
) -> tuple[type[BaseException], BaseException, TracebackType | None]:
    """`exc_info` for logging `exc`: its traceback and chain, without the values its messages
    (or its causes') quote."""
    copy = _safe_copy(exc, {})
    return type(copy), copy, copy.__traceback__


_base_record_factory = logging.getLogRecordFactory()


def _safe_record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_record_factory(*args, **kwargs)
    exc = record.exc_info[1] if record.exc_info else None
    if exc is not None and not isinstance(exc, RedactedException):
        record.exc_info = safe_exc_info(exc)
    return record


def install_safe_exception_logging() -> None:
    """Every log record with an exception (ours, uvicorn's "Exception in ASGI application",
    procrastinate's failed jobs) carries the redacted copy. Idempotent; costs nothing on records
    without an exception."""
    global _base_record_factory
    current = logging.getLogRecordFactory()
    if current is not _safe_record_factory:
        _base_record_factory = current
        logging.setLogRecordFactory(_safe_record_factory)


class AccessLogMiddleware(HTTPMiddleware):
    """One access-log line and one latency observation (/metrics) per request."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            observe_request(scope, status, elapsed)
            access_logger.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
