"""What the OpenAPI document says about the order event streams (a schema cannot describe one)."""

from __future__ import annotations

from typing import Any

STREAM_DESCRIPTION = """
A [Server-Sent Events](https://html.spec.whatwg.org/multipage/server-sent-events.html) stream
(`text/event-stream`) of the order's status, pushed as soon as a change is committed (whichever API
process or worker made it).

Authenticate with `Authorization: Bearer <access token>` (a browser's `EventSource` cannot send
headers: use a fetch-based SSE client). Another user's order answers 404 before any stream starts.

Each change is one event:

```
id: 42
event: order.status
data: {"order_id": "6f1c…", "status": "paid", "fulfilment_status": "unfulfilled",
       "payment_status": "succeeded", "payment_failure_code": null,
       "at": "2026-11-22T03:40:00.123456+00:00"}
```

* `status`: `pending_payment`, `paid`, `partially_refunded`, `refunded`, `disputed`, `cancelled`,
  `expired`, `failed`; `fulfilment_status`: `unfulfilled`, `shipped`, `delivered`;
  `payment_status`: `requires_payment`, `requires_action`, `processing`, `succeeded`,
  `canceled`, `expired`, `failed`. A declined attempt shows as `payment_status:
  requires_payment` with `payment_failure_code` (e.g. `card_declined`): the buyer may try again.
* The first event is the current state. Its `id` is the order's newest event id (`0` if none).
* Reconnect with `Last-Event-ID: <id of the last event received>` (EventSource does it by itself):
  the stream replays every change after that id instead of the current state, so nothing is
  missed.
* `: ping` comment lines are sent after `SSE_HEARTBEAT_SECONDS` of silence (ignore them); the
  first frame is `retry: 3000` (reconnect after 3 s).
"""

STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The event stream (see the description for the format).",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
