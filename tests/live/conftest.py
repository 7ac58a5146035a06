"""Real API processes for the event-stream tests: the app served by uvicorn on 127.0.0.1 (a free
port), because an in-process ASGI transport buffers whole responses and a stream never ends.

Each `serve()` is a separate app with its own broadcaster and LISTEN connection, like a separate
API process; they share the committed test database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.accounts.models import User
from marketplace_api.live.broadcaster import BROADCASTER_ATTRIBUTE, OrderEventBroadcaster
from marketplace_api.main import create_app
from tests.conftest import MakeUser, build_state, make_settings
from tests.fixtures.orders import PlacedOrder, make_vendor, place_order

HEARTBEAT = 0.2


@dataclass
class Server:
    app: FastAPI
    base_url: str

    @property
    def broadcaster(self) -> OrderEventBroadcaster | None:
        value: OrderEventBroadcaster | None = getattr(self.app.state, BROADCASTER_ATTRIBUTE, None)
        return value


Serve = Callable[[], Awaitable[Server]]


@pytest.fixture
async def serve(database_url: str, committed_engine: AsyncEngine) -> AsyncIterator[Serve]:
    settings = make_settings(database_url, sse_heartbeat_seconds=HEARTBEAT)
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start() -> Server:
        app = create_app(state=build_state(settings, committed_engine))
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.create_task(server.serve())
        running.append((server, task))
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        return Server(app, f"http://127.0.0.1:{port}")

    try:
        yield start
    finally:
        for server, _task in running:
            server.should_exit = True
        for server, task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)
            broadcaster = getattr(server.config.app.state, BROADCASTER_ATTRIBUTE, None)
            if broadcaster is not None:
                await broadcaster.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@dataclass
class SseEvent:
    id: str | None = None
    event: str | None = None
    data: dict[str, Any] | None = None
    comments: list[str] = field(default_factory=list)
    retry: int | None = None


class SseReader:
    """Reads frames (blank-line separated) from a streaming httpx response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, within: float = 5.0) -> SseEvent:
        return await asyncio.wait_for(self._next(), within)

    async def _next(self) -> SseEvent:
        frame = SseEvent()
        seen = False
        async for line in self._lines:
            if line == "":
                if seen:
                    return frame
                continue
            seen = True
            if line.startswith(":"):
                frame.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                frame.id = value
            elif name == "event":
                frame.event = value
            elif name == "data":
                frame.data = json.loads(value)
            elif name == "retry":
                frame.retry = int(value)
        raise AssertionError("stream ended")

    async def next_event(self, within: float = 5.0) -> SseEvent:
        """The next frame carrying an event (skipping heartbeats and `retry:`)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError
            frame = await self.next(remaining)
            if frame.event is not None:
                return frame


@contextlib.asynccontextmanager
async def open_stream(
    base_url: str, path: str, headers: dict[str, str]
) -> AsyncIterator[tuple[httpx.Response, SseReader]]:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
        http.stream("GET", path, headers=headers) as response,
    ):
        yield response, SseReader(response)


@pytest.fixture
def committed_order(
    committed_engine: AsyncEngine,
) -> Callable[..., Awaitable[PlacedOrder]]:
    async def make(buyer: User, *, vendor_user: User | None = None, **kwargs: Any) -> PlacedOrder:
        async with AsyncSession(committed_engine, expire_on_commit=False) as session:
            if vendor_user is not None:
                kwargs["vendor"], _ = await make_vendor(session, user=vendor_user)
            return await place_order(session, buyer, **kwargs)

    return make


__all__ = ["MakeUser", "Serve", "Server", "SseEvent", "SseReader", "open_stream"]
