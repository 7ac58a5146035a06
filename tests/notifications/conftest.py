"""A real local SMTP server (aiosmtpd on 127.0.0.1, a free port), an empty job queue, the real
procrastinate worker run until the queue has nothing due, and a signed webhook delivery."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace_api.config import Settings
from marketplace_api.worker.runner import run_worker
from tests.conftest import make_settings
from tests.fixtures.stripe import event_body, sign

PROCRASTINATE_TABLES = (
    "procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs, procrastinate_workers"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Inbox:
    """What the SMTP server received: (envelope recipients, parsed message)."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [message for _, message in self.received]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = Inbox()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_down() -> Iterator[SmtpServer]:
    """A port nobody listens on (yet): `start()` brings the server up there."""
    server = SmtpServer(free_port())
    try:
        yield server
    finally:
        server.stop()


async def clear_queue(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {PROCRASTINATE_TABLES} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def queue_engine(committed_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """Real commits on separate connections, with an empty job queue before and after."""
    await clear_queue(committed_engine)
    try:
        yield committed_engine
    finally:
        await clear_queue(committed_engine)


def mail_settings(database_url: str, smtp_url: str | None, **overrides: Any) -> Settings:
    # No Stripe key: the worker has nothing to call Stripe with.
    return make_settings(database_url, stripe_secret_key=None, smtp_url=smtp_url, **overrides)


Drain = Callable[[Settings], Awaitable[None]]


@pytest.fixture
def drain(database_url: str) -> Drain:
    """Run the real worker (no periodic jobs) until nothing is due, then stop."""

    async def run(settings: Settings) -> None:
        await asyncio.wait_for(
            run_worker(
                settings,
                database_url,
                wait=False,
                install_signal_handlers=False,
                run_periodic=False,
            ),
            timeout=30,
        )

    return run


async def job_rows(engine: AsyncEngine, task_name: str = "send_notification") -> list[Any]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT id, status, attempts, scheduled_at, args FROM procrastinate_jobs "
                "WHERE task_name = :task ORDER BY id"
            ),
            {"task": task_name},
        )
        return list(result.mappings().all())


async def deliver(client: httpx.AsyncClient, evt: dict[str, Any]) -> dict[str, Any]:
    """Deliver `evt` signed as Stripe does; its receipt (the delivery must be answered 200)."""
    body = event_body(evt)
    response = await client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign(body), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    receipt: dict[str, Any] = response.json()
    return receipt
