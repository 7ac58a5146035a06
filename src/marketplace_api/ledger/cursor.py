"""Opaque keyset cursors `(timestamp, id)` for the lists of this area (orders, statement,
disputes): base64 of `<ISO timestamp>|<uuid>` of the last row of a page."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from marketplace_api.errors import UnprocessableEntity


class InvalidCursor(UnprocessableEntity):
    code = "invalid_cursor"
    title = "Invalid pagination cursor"


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, row_id = raw.split("|", 1)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when, uuid.UUID(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("The cursor is not one this API returned.") from exc
