"""What the pure-ASGI middleware of the app share: acting on HTTP requests only, and knowing
whether the response has started."""

from __future__ import annotations

from abc import ABC, abstractmethod

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HTTPMiddleware(ABC):
    """A middleware that acts on HTTP requests only: `handle` sees each of them; any other scope
    (lifespan, websocket) goes to the app untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    @abstractmethod
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class StartTrackingSend:
    """Wraps `send` and notes when the response starts: from then on, a failure can no longer be
    answered with a response of its own."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)
