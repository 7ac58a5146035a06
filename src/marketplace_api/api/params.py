"""Route parameters shared by several routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from marketplace_api.inputs import Text

# Keyset cursors are opaque; they decode to (time, id) and are checked when decoded (a forged
# one answers 422 `invalid_cursor`). Ours are under 200 characters; the event store's hold a
# Stripe event id, up to 255.
CursorQuery = Annotated[
    Text | None,
    Query(max_length=500, description="`next_cursor` of the previous page."),
]
