"""Signed events that can never be stored are refused at once (400 with a problem code, nothing
stored, the payload never logged), and signatures from outside the tolerance are refused in both
directions, past and future."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.webhooks.models import StripeEvent
from tests.fixtures.stripe import event, event_body, sign, stripe_id
from tests.webhooks.conftest import deliver

MARKER = "poison-buyer@example.com"  # in every payload below: never in a log or an answer
TEN_YEARS = 10 * 365 * 24 * 3600


def _event(**overrides: Any) -> dict[str, Any]:
    evt = event("customer.created", {"id": stripe_id("cus"), "email": MARKER})
    evt.update(overrides)
    return evt


def _with_object(extra: dict[str, Any]) -> Callable[[], bytes]:
    def build() -> bytes:
        evt = _event()
        evt["data"]["object"].update(extra)
        return event_body(evt)

    return build


def _fields(**overrides: Any) -> Callable[[], bytes]:
    return lambda: event_body(_event(**overrides))


def _without(field: str) -> Callable[[], bytes]:
    def build() -> bytes:
        evt = _event()
        del evt[field]
        return event_body(evt)

    return build


def _nested(depth: int) -> Callable[[], bytes]:
    """A valid event whose object holds `depth` nested arrays (built as text: `json.dumps`
    itself cannot go 10,000 deep)."""

    def build() -> bytes:
        head = event_body(_event())[:-1]  # without the closing brace
        return head + b',"deep":' + b"[" * depth + b"]" * depth + b"}"

    return build


POISON: dict[str, Callable[[], bytes]] = {
    "NUL in a string": _with_object({"name": "a\u0000b"}),
    "NUL in a key": _with_object({"meta\u0000data": "x"}),
    "NUL deep inside": _with_object({"metadata": {"items": [{"note": "x\u0000"}]}}),
    "NUL in the type": _fields(type="customer.\u0000created"),
    "account over the column": _fields(account="acct_" + "x" * 300),
    "account not a string": _fields(account=12345),
    "created of 10^12": _fields(created=10**12),
    "created negative": _fields(created=-1),
    "created a string": _fields(created="1793000000"),
    "created a boolean": _fields(created=True),
    "nested 10,000 deep": _nested(10_000),
    "nested 200 deep": _nested(200),
    "a JSON array": lambda: json.dumps([MARKER]).encode(),
    "a JSON string": lambda: json.dumps(MARKER).encode(),
    "JSON null": lambda: b"null",
    "a JSON number": lambda: b"42",
    "no id": _without("id"),
    "no type": _without("type"),
    "no data": _without("data"),
    "id not a string": _fields(id=7),
}


async def _stored(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(StripeEvent))).scalar_one()


@pytest.mark.parametrize("name", list(POISON))
async def test_event_that_cannot_be_stored_is_refused_with_400_and_never_logged(
    client: httpx.AsyncClient,
    session: AsyncSession,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    body = POISON[name]()
    caplog.set_level(logging.DEBUG)

    response = await client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign(body), "Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_payload"
    assert MARKER not in response.text
    assert await _stored(session) == 0
    refused = [r for r in caplog.records if r.getMessage() == "stripe webhook refused"]
    assert len(refused) == 1
    assert getattr(refused[0], "code", None) == "invalid_payload"
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert MARKER not in logged
    assert "\\u0000" not in logged


async def test_a_storable_event_of_the_same_shape_is_accepted(client: httpx.AsyncClient) -> None:
    """The refusals above are about the poison, not the shape: the same event without it (and
    nested a little) is stored."""
    response = await client.post(
        "/webhooks/stripe",
        content=(body := _nested(20)()),
        headers={"Stripe-Signature": sign(body), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ignored"


@pytest.mark.parametrize(
    "offset",
    [3600, TEN_YEARS, -3600, -TEN_YEARS, 360, -301],
    ids=["an hour ahead", "ten years ahead", "an hour old", "ten years old", "just ahead", "old"],
)
async def test_signature_timestamp_outside_the_tolerance_is_refused_both_ways(
    client: httpx.AsyncClient, session: AsyncSession, offset: int
) -> None:
    response = await deliver(client, _event(), timestamp=int(time.time()) + offset)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_signature"
    assert "tolerance" in response.json()["detail"]
    assert await _stored(session) == 0


@pytest.mark.parametrize("offset", [-250, 0, 60, 250])
async def test_signature_timestamp_within_the_tolerance_is_accepted(
    client: httpx.AsyncClient, offset: int
) -> None:
    response = await deliver(client, _event(), timestamp=int(time.time()) + offset)
    assert response.status_code == 200, response.text
