"""The order event stream as Server-Sent Events text (framework-free: the routes wrap it in a
streaming response).

```
retry: 3000

id: 42
event: order.status
data: {"order_id": "…", "status": "paid", "fulfilment_status": "unfulfilled",
       "payment_status": "succeeded", "payment_failure_code": null,
       "at": "2026-11-22T03:40:00.123456+00:00"}

: ping
```

On connect: the current state (its `id` is the newest event id of the order, `0` when it never
changed), or — when the client sends `Last-Event-ID` — every event after that id. Then each
committed change as it happens, and a `: ping` comment after `heartbeat` seconds of silence.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.live.broadcaster import OrderEventBroadcaster
from marketplace_api.live.service import OrderState, current_state, events_after

logger = logging.getLogger(__name__)

EVENT_NAME = "order.status"
RETRY_MS = 3000  # how long a browser's EventSource waits before reconnecting
_SENT_WINDOW = 512  # ids remembered to skip duplicates when commits land out of id order


def format_event(state: OrderState) -> str:
    data = {
        "order_id": str(state.order_id),
        "status": state.status,
        "fulfilment_status": state.fulfilment_status,
        "payment_status": state.payment_status,
        "payment_failure_code": state.payment_failure_code,
        "at": state.at.isoformat(),
    }
    return f"id: {state.event_id}\nevent: {EVENT_NAME}\ndata: {json.dumps(data)}\n\n"


def parse_last_event_id(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    # isascii: `"²".isdigit()` is true, but int() refuses it.
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None


async def order_event_stream(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    broadcaster: OrderEventBroadcaster,
    order_id: uuid.UUID,
    last_event_id: int | None,
    heartbeat: float,
    is_disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    """Yield SSE frames until the client goes away (cancellation or `is_disconnected`)."""
    # Subscribe before reading, so a change committed in between is not missed.
    async with broadcaster.subscribe(order_id) as subscription:
        yield f"retry: {RETRY_MS}\n\n"
        sent: deque[int] = deque(maxlen=_SENT_WINDOW)
        async with sessionmaker() as session:
            if last_event_id is None:
                state = await current_state(session, order_id)
                if state is None:
                    return  # the order is gone
                last = state.event_id
                sent.append(last)
                yield format_event(state)
            else:
                last = last_event_id
                for state in await _all_after(session, order_id, last, []):
                    last = max(last, state.event_id)
                    sent.append(state.event_id)
                    yield format_event(state)
        while True:
            if not await subscription.wait(heartbeat):
                if await is_disconnected():
                    return
                yield ": ping\n\n"
                continue
            pending, _resync = subscription.take()
            # An event can commit after one with a higher id (two transactions touching the same
            # order through different rows): fetch notified ids below `last` not sent yet.
            late = sorted(i for i in pending if i <= last and i not in sent)
            async with sessionmaker() as session:
                states = await _all_after(session, order_id, last, late)
            for state in states:
                if state.event_id in sent:
                    continue
                last = max(last, state.event_id)
                sent.append(state.event_id)
                yield format_event(state)
            if await is_disconnected():
                return


async def _all_after(
    session: AsyncSession, order_id: uuid.UUID, after_id: int, late: list[int]
) -> list[OrderState]:
    states: list[OrderState] = []
    while True:
        batch = await events_after(session, order_id, after_id, also=late)
        states.extend(batch)
        late = []
        if len(batch) < 500:
            await session.commit()
            return states
        after_id = batch[-1].event_id


# Response headers: nothing stored by any cache, and no buffering by proxies (nginx honours
# X-Accel-Buffering). `no-store`, not `no-cache`: with `no-cache` Chromium sent a fetch() reconnect
# carrying `Last-Event-ID` twice (a cache revalidation), opening two streams.
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
