"""Keyset pagination shared by every list: an opaque cursor for a stable (time, id) order.

The cursor is URL-safe base64 of `<created_at ISO 8601>|<uuid>` of the last row of the page: the
next page is the rows strictly after it in that order, so inserts and deletes between requests
never duplicate or skip a row, and the query stays an index range scan however deep the page.

A cursor is client input: anything but one this API could have returned (not base64, no `|`, a
naive or unparseable time, a time that does not exist in UTC such as year 1 at +14:00) answers
422 `invalid_cursor` before any query runs.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from marketplace_api.errors import UnprocessableEntity

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class InvalidCursor(UnprocessableEntity):
    code = "invalid_cursor"
    title = "Invalid pagination cursor"


class _Keyed(Protocol):
    id: Any
    created_at: Any


K = TypeVar("K", bound=_Keyed)


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_time(text: str) -> datetime:
    """The time of a cursor, in UTC; ValueError if it is naive or does not exist in UTC (the
    database driver converts to UTC, which would overflow past year 1 or 9999)."""
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError("naive timestamp")
    try:
        return when.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("timestamp out of range in UTC") from exc


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, _, row_id = base64.urlsafe_b64decode(padded).decode().partition("|")
        return cursor_time(created), uuid.UUID(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("The cursor is not one this API returned.") from exc


def keyset_page(
    query: Select[Any],
    *,
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[uuid.UUID],
    cursor: str | None,
    limit: int,
) -> Select[Any]:
    """Order newest first and start after `cursor`; fetches one extra row to detect a next page."""
    if cursor:
        after_created, after_id = decode_cursor(cursor)
        condition: ColumnElement[bool] = tuple_(created_at, row_id) < tuple_(
            after_created, after_id
        )
        query = query.where(condition)
    return query.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)


def split_page(rows: Sequence[K], limit: int) -> tuple[list[K], str | None]:
    """The page's rows and the cursor of the next page (None on the last page)."""
    items = list(rows[:limit])
    if len(rows) > limit and items:
        last = items[-1]
        return items, encode_cursor(last.created_at, last.id)
    return items, None
