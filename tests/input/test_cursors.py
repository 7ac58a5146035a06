"""Every keyset cursor that is not one the API returned answers 422 `invalid_cursor`, on every
paginated route (taken from the OpenAPI document), before a query runs.

Before, a cursor decoding to a time PostgreSQL's driver cannot convert to UTC (year 1 at +14:00,
year 9999 at -14:00) reached the database layer and answered 500."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.pagination import InvalidCursor, decode_cursor, encode_cursor
from tests.conftest import MakeUser
from tests.fixtures.accounts import make_vendor
from tests.input.openapi_inputs import Input, inputs

CURSOR_ROUTES = [field for field in inputs() if field.name == ("cursor",)]

OUT_OF_RANGE_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T05:00:00+05:30",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T20:00:00-04:00",
]
BAD_TIMES = [*OUT_OF_RANGE_TIMES, "2026-01-01T00:00:00", "yesterday", ""]


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _forged(time: str) -> list[str]:
    """The time in both cursor shapes: `time|uuid` (most lists) and `[time, id]` (events)."""
    return [_b64(f"{time}|{uuid.uuid4()}"), _b64(json.dumps([time, "evt_1"]))]


MALFORMED = [
    "!!!",
    "not-base64-%",
    _b64("no separator"),
    _b64(f"2026-01-01T00:00:00+00:00|{'z' * 36}"),
    _b64("[1, 2, 3]"),
    _b64('["2026-01-01T00:00:00+00:00", 42]'),
    _b64('["2026-01-01T00:00:00+00:00", "evt\\u0000"]'),
    base64.urlsafe_b64encode(b"\xff\xfe|\x00").decode(),
]
FORGED = [cursor for time in BAD_TIMES for cursor in _forged(time)] + MALFORMED


def test_every_paginated_route_is_covered() -> None:
    paths = {field.path for field in CURSOR_ROUTES}
    assert {
        "/v1/platform/listings",
        "/v1/buyer/orders",
        "/v1/vendor/orders",
        "/v1/vendor/listings",
        "/v1/vendor/payments",
        "/v1/admin/webhook-events",
        "/v1/admin/disputes",
        "/v1/admin/vendors",
    } <= paths


@pytest.mark.parametrize("field", CURSOR_ROUTES, ids=lambda f: f.path)
async def test_forged_cursor_is_a_422_invalid_cursor_on_every_paginated_route(
    client: httpx.AsyncClient, make_user: MakeUser, session: AsyncSession, field: Input
) -> None:
    headers = {}
    if field.role is not None:
        user = await make_user(field.role)
        headers = user.headers
    for cursor in FORGED:
        response = await client.get(field.path, params={"cursor": cursor}, headers=headers)
        assert response.status_code == 422, (cursor, response.text)
        assert response.json()["code"] == "invalid_cursor", (cursor, response.text)
    if field.role == "vendor":  # with a profile, the vendor's lists reach their queries
        await make_vendor(session, user=user.user)
    for cursor in FORGED:
        response = await client.get(field.path, params={"cursor": cursor}, headers=headers)
        assert response.status_code == 422, (cursor, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_cursor", (cursor, response.text)


@pytest.mark.parametrize("time", OUT_OF_RANGE_TIMES)
def test_a_cursor_time_outside_utc_range_is_refused_when_decoded(time: str) -> None:
    with pytest.raises(InvalidCursor, match="not one this API returned"):
        decode_cursor(_b64(f"{time}|{uuid.uuid4()}"))


def test_cursors_the_api_returns_still_decode_at_the_edges_of_time() -> None:
    row_id = uuid.uuid4()
    for when in (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)):
        assert decode_cursor(encode_cursor(when, row_id)) == (when, row_id)
