"""The two log formats (JSON lines for a collector, readable lines for a person), which one each
environment gets, and the job queue's periodic ticks kept at DEBUG."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from asgi_correlation_id import correlation_id
from pydantic import BaseModel, ValidationError

from marketplace_api.config import Settings
from marketplace_api.observability import configure_logging

CARD_NUMBER = "4242424242424242"


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    ("environment", "log_format", "json_logs"),
    [
        ("development", None, False),
        ("test", None, True),
        ("development", "json", True),
        ("test", "text", False),
    ],
)
def test_development_logs_text_and_every_other_environment_json(
    environment: str, log_format: str | None, json_logs: bool
) -> None:
    values: dict[str, object] = {"environment": environment}
    if log_format is not None:
        values["log_format"] = log_format
    assert Settings(_env_file=None, **values).log_json is json_logs  # type: ignore[arg-type]


@pytest.mark.usefixtures("restore_root_logger")
def test_a_text_line_reads_time_level_logger_message_fields_and_request_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", json_logs=False)
    token = correlation_id.set("0123456789abcdef0123456789abcdef")
    try:
        logging.getLogger("marketplace_api.access").info(
            "request",
            extra={"method": "GET", "path": "/v1/a b", "status": 200, "duration_ms": 1.5},
        )
    finally:
        correlation_id.reset(token)
    logging.getLogger("marketplace_api.worker.runner").info("job worker stopped")
    first, second = _lines(capsys)
    time, level, logger, rest = first.split(maxsplit=3)
    assert len(time) == len("12:34:56.789")
    assert (level, logger) == ("INFO", "marketplace_api.access")
    assert rest == (
        'request  method=GET path="/v1/a b" status=200 duration_ms=1.5'
        " request_id=0123456789abcdef0123456789abcdef"
    )
    assert second.endswith("INFO    marketplace_api.worker.runner  job worker stopped")


@pytest.mark.usefixtures("restore_root_logger")
def test_a_json_line_holds_the_same_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json_logs=True)
    logging.getLogger("marketplace_api.access").info("request", extra={"status": 201})
    (line,) = _lines(capsys)
    record = json.loads(line)
    assert record["level"] == "INFO"
    assert record["name"] == "marketplace_api.access"
    assert record["message"] == "request"
    assert record["status"] == 201
    assert "request_id" in record


@pytest.mark.usefixtures("restore_root_logger")
def test_a_text_line_shows_the_traceback_without_quoted_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", json_logs=False)

    class Card(BaseModel):
        number: int

    try:
        Card.model_validate({"number": f"{CARD_NUMBER}x"})
    except ValidationError:
        logging.getLogger("tests.text").exception("could not read the card")
    output = capsys.readouterr().out
    assert CARD_NUMBER not in output
    assert "ERROR   tests.text  could not read the card" in output
    assert "Traceback (most recent call last):" in output
    assert "ValidationError: message withheld (number: int_parsing)" in output


def _log_ticks() -> None:
    periodic = {"id": 7, "task_name": "expire_reservations", "task_kwargs": {"timestamp": 60}}
    queued = {"id": 8, "task_name": "send_notification", "task_kwargs": {"notification_id": "n"}}
    logging.getLogger("procrastinate.periodic").info(
        "Periodic job expire_reservations deferred", extra={"action": "periodic_task_deferred"}
    )
    worker = logging.getLogger("procrastinate.worker.in-process")
    worker.info("Starting job expire_reservations", extra={"action": "start_job", "job": periodic})
    logging.getLogger("procrastinate.worker").info(
        "Job expire_reservations ended", extra={"action": "job_success", "job": periodic}
    )
    worker.info("Starting job send_notification", extra={"action": "start_job", "job": queued})
    tasks = logging.getLogger("marketplace_api.worker.tasks")
    tasks.info("expired reservations", extra={"count": 0, "tick": 60})
    tasks.info("processed due webhook events", extra={"count": 3, "tick": 60})
    tasks.warning("money job skipped", extra={"count": 0, "tick": 60})


@pytest.mark.usefixtures("restore_root_logger")
def test_periodic_ticks_with_nothing_to_do_are_debug(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json_logs=False)
    _log_ticks()
    lines = _lines(capsys)
    # The tick that did work, the job a request queued and the warning keep their level.
    assert len(lines) == 3
    assert "INFO    procrastinate.worker.in-process  Starting job send_notification" in lines[0]
    assert "INFO    marketplace_api.worker.tasks  processed due webhook events" in lines[1]
    assert "WARNING marketplace_api.worker.tasks  money job skipped" in lines[2]


@pytest.mark.usefixtures("restore_root_logger")
def test_log_level_debug_shows_every_tick_as_debug(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", json_logs=True)
    _log_ticks()
    levels = {record["message"]: record["level"] for record in map(json.loads, _lines(capsys))}
    assert levels == {
        "Periodic job expire_reservations deferred": "DEBUG",
        "Starting job expire_reservations": "DEBUG",
        "Job expire_reservations ended": "DEBUG",
        "Starting job send_notification": "INFO",
        "expired reservations": "DEBUG",
        "processed due webhook events": "INFO",
        "money job skipped": "WARNING",
    }
