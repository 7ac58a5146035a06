"""One LISTEN connection per API process, fanned out to the order streams of that process.

The database triggers `pg_notify('order_events', '<order_id>:<event id>')` at commit. The
broadcaster holds a dedicated asyncpg connection listening on that channel (started with the
first subscriber, closed with the last) and wakes the subscriptions of the named order. A
subscription is a small mailbox: the event ids notified since the stream last looked, and an
`asyncio.Event`; the stream then reads the rows from `order_events` — the table, not the
notification, is the source of truth, so nothing is lost when notifications coalesce.

When the LISTEN connection is lost it reconnects with backoff, and on every (re)connection wakes
every subscription with `resync`: a stream re-reads what it might have missed while nobody was
listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncEngine

from marketplace_api.live.models import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[asyncpg.Connection]]

MAX_PENDING_IDS = 1000  # per subscription; beyond that the stream simply resyncs


class Subscription:
    def __init__(self, order_id: uuid.UUID) -> None:
        self.order_id = order_id
        self.pending: set[int] = set()
        self.resync = False
        self._wakeup = asyncio.Event()

    def _push(self, event_id: int | None) -> None:
        if event_id is None or len(self.pending) >= MAX_PENDING_IDS:
            self.resync = True
        else:
            self.pending.add(event_id)
        self._wakeup.set()

    async def wait(self, seconds: float) -> bool:
        """Wait until woken or `seconds` passed; True when woken."""
        try:
            await asyncio.wait_for(self._wakeup.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def take(self) -> tuple[set[int], bool]:
        """The ids notified since the last call, and whether a full re-read is due."""
        pending, resync = self.pending, self.resync
        self.pending, self.resync = set(), False
        self._wakeup.clear()
        return pending, resync


class OrderEventBroadcaster:
    def __init__(
        self,
        connect: Connect,
        *,
        channel: str = NOTIFY_CHANNEL,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 10.0,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._subscriptions: dict[uuid.UUID, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()  # set while LISTEN is active (tests wait on it)
        self.connections_made = 0

    @property
    def subscriber_count(self) -> int:
        return sum(len(subs) for subs in self._subscriptions.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, order_id: uuid.UUID) -> AsyncIterator[Subscription]:
        subscription = Subscription(order_id)
        self._subscriptions.setdefault(order_id, set()).add(subscription)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="order events LISTEN")
        try:
            yield subscription
        finally:
            subs = self._subscriptions.get(order_id)
            if subs is not None:
                subs.discard(subscription)
                if not subs:
                    del self._subscriptions[order_id]
            if not self._subscriptions:
                await self.aclose()

    async def aclose(self) -> None:
        """Stop listening (also done automatically when the last subscriber leaves)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _dispatch(self, payload: str) -> None:
        order_part, _, id_part = payload.partition(":")
        try:
            order_id = uuid.UUID(order_part)
            event_id: int | None = int(id_part)
        except ValueError:
            logger.warning("malformed order event notification", extra={"length": len(payload)})
            return
        for subscription in self._subscriptions.get(order_id, ()):
            subscription._push(event_id)

    def _resync_all(self) -> None:
        for subs in self._subscriptions.values():
            for subscription in subs:
                subscription._push(None)

    async def _listen(self) -> None:
        delay = self._reconnect_delay
        while True:
            connection: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                connection = await self._connect()

                def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                    self._dispatch(payload)

                connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await connection.add_listener(self._channel, on_notify)
                self.connections_made += 1
                self.connected.set()
                delay = self._reconnect_delay
                self._resync_all()  # whatever committed while nobody listened
                while not lost.is_set():
                    # asyncpg reports a dead socket only when it is used: probe it now and then.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=15.0)
                    if not lost.is_set():
                        await connection.fetchval("SELECT 1", timeout=5.0)
                logger.warning("order events LISTEN connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning(
                    "order events LISTEN connection failed; retrying",
                    exc_info=True,
                    extra={"retry_in": delay},
                )
            finally:
                self.connected.clear()
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=2.0)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_reconnect_delay)


_CONNECT_KEYS = ("host", "port", "user", "password", "database", "ssl", "direct_tls")


def connect_like(engine: AsyncEngine) -> Connect:
    """Open a dedicated asyncpg connection to the engine's database (not one of its pool's: a
    LISTEN connection lives as long as the broadcaster)."""
    _args, options = engine.dialect.create_connect_args(engine.url)
    params = {key: value for key, value in options.items() if key in _CONNECT_KEYS}
    params["server_settings"] = {"application_name": "marketplace-api-listen"}

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(**params, timeout=10)

    return connect


BROADCASTER_ATTRIBUTE = "order_event_broadcaster"


def broadcaster_for(holder: Any, engine: AsyncEngine) -> OrderEventBroadcaster:
    """The process's broadcaster, kept on `holder` (the app's `state`), made on first use."""
    broadcaster: OrderEventBroadcaster | None = getattr(holder, BROADCASTER_ATTRIBUTE, None)
    if broadcaster is None:
        broadcaster = OrderEventBroadcaster(connect_like(engine))
        setattr(holder, BROADCASTER_ATTRIBUTE, broadcaster)
    return broadcaster
