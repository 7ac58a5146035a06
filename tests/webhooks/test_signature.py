"""`POST /webhooks/stripe` accepts only events signed as Stripe signs them, with a configured
secret, within the tolerance; every rejection is a problem that never echoes the payload."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.deps import get_session
from marketplace_api.main import create_app
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from tests.conftest import build_state, make_settings
from tests.fixtures.stripe import (
    WEBHOOK_SECRET,
    WEBHOOK_SECRET_CONNECT,
    event,
    event_body,
    sign,
    stripe_id,
)
from tests.webhooks.conftest import deliver

MARKER = "very-private-buyer@example.com"  # must never come back in an error


def _unhandled(**kwargs: object) -> dict[str, object]:
    return event("customer.created", {"id": stripe_id("cus"), "email": MARKER}, **kwargs)  # type: ignore[arg-type]


async def _stored(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(StripeEvent))).scalar_one()


def _assert_rejected(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert MARKER not in response.text


async def test_signed_unknown_type_is_stored_ignored_and_acknowledged(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    evt = _unhandled()
    response = await deliver(client, evt)
    assert response.status_code == 200
    assert response.json() == {
        "received": True,
        "id": evt["id"],
        "status": "ignored",
        "duplicate": False,
    }
    row = await session.get(StripeEvent, evt["id"], populate_existing=True)
    assert row is not None
    assert row.status is EventStatus.ignored
    assert row.type == "customer.created"
    assert row.payload == evt
    assert row.processed_at is not None


async def test_second_secret_is_accepted(client: httpx.AsyncClient) -> None:
    evt = _unhandled(account="acct_1QaBcD2eZvKYlo2C")
    response = await deliver(client, evt, secret=WEBHOOK_SECRET_CONNECT)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"


async def test_wrong_secret_is_rejected(client: httpx.AsyncClient, session: AsyncSession) -> None:
    response = await deliver(client, _unhandled(), secret="whsec_someone_else")
    _assert_rejected(response, 400, "invalid_signature")
    assert await _stored(session) == 0


async def test_bad_signature_is_rejected(client: httpx.AsyncClient) -> None:
    body = event_body(_unhandled())
    ts = int(time.time())
    response = await client.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": f"t={ts},v1={'0' * 64}"}
    )
    _assert_rejected(response, 400, "invalid_signature")


@pytest.mark.parametrize(
    "header", ["garbage", "v1=abc", "t=notanumber,v1=abc", "t=1793000000,v0=abc", ""]
)
async def test_malformed_signature_header_is_rejected(
    client: httpx.AsyncClient, header: str
) -> None:
    response = await client.post(
        "/webhooks/stripe", content=event_body(_unhandled()), headers={"Stripe-Signature": header}
    )
    _assert_rejected(response, 400, "invalid_signature")


async def test_missing_header_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post("/webhooks/stripe", content=event_body(_unhandled()))
    _assert_rejected(response, 400, "invalid_signature")
    assert "missing" in response.json()["detail"]


async def test_stale_timestamp_is_rejected(client: httpx.AsyncClient) -> None:
    response = await deliver(client, _unhandled(), timestamp=int(time.time()) - 301)
    _assert_rejected(response, 400, "invalid_signature")
    assert "tolerance" in response.json()["detail"]


async def test_timestamp_within_tolerance_is_accepted(client: httpx.AsyncClient) -> None:
    response = await deliver(client, _unhandled(), timestamp=int(time.time()) - 250)
    assert response.status_code == 200


async def test_tampered_body_is_rejected(client: httpx.AsyncClient, session: AsyncSession) -> None:
    evt = _unhandled()
    body = event_body(evt)
    header = sign(body, WEBHOOK_SECRET)
    tampered = body.replace(b'"livemode":false', b'"livemode":true')
    assert tampered != body
    response = await client.post(
        "/webhooks/stripe", content=tampered, headers={"Stripe-Signature": header}
    )
    _assert_rejected(response, 400, "invalid_signature")
    assert await _stored(session) == 0


async def test_reserialized_json_is_rejected(client: httpx.AsyncClient) -> None:
    """The signature covers the exact bytes: the same JSON with other whitespace fails."""
    evt = _unhandled()
    header = sign(event_body(evt), WEBHOOK_SECRET)
    import json

    response = await client.post(
        "/webhooks/stripe", content=json.dumps(evt, indent=2), headers={"Stripe-Signature": header}
    )
    _assert_rejected(response, 400, "invalid_signature")


async def test_signed_non_json_is_invalid_payload(client: httpx.AsyncClient) -> None:
    body = b"not json " + MARKER.encode()
    response = await client.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body)}
    )
    _assert_rejected(response, 400, "invalid_payload")


async def test_signed_json_that_is_not_an_event_is_invalid_payload(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    body = b'{"email": "' + MARKER.encode() + b'"}'
    response = await client.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body)}
    )
    _assert_rejected(response, 400, "invalid_payload")
    assert await _stored(session) == 0


async def test_oversized_body_is_rejected(client: httpx.AsyncClient, session: AsyncSession) -> None:
    evt = _unhandled()
    evt["data"]["padding"] = "x" * (1_048_576 + 10)  # type: ignore[index]
    response = await deliver(client, evt)
    _assert_rejected(response, 413, "payload_too_large")
    assert await _stored(session) == 0


async def test_oversized_body_without_content_length_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    """A chunked body (no Content-Length) is limited on the stream."""
    body = b"{" + b" " * (1_048_576 + 10) + b"}"

    async def chunks() -> object:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = await client.post(
        "/webhooks/stripe",
        content=chunks(),
        headers={"Stripe-Signature": sign(body)},  # type: ignore[arg-type]
    )
    _assert_rejected(response, 413, "payload_too_large")


async def test_empty_secret_list_accepts_nothing(
    database_url: str, engine: AsyncEngine, session: AsyncSession
) -> None:
    settings = make_settings(database_url, stripe_webhook_secrets=[])
    app = create_app(state=build_state(settings, engine))

    async def _session() -> object:
        yield session

    app.dependency_overrides[get_session] = _session
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        for secret in (WEBHOOK_SECRET, ""):
            response = await deliver(http, _unhandled(), secret=secret)
            _assert_rejected(response, 400, "invalid_signature")
    assert await _stored(session) == 0


async def test_verification_works_without_stripe_secret_key(
    database_url: str, engine: AsyncEngine, session: AsyncSession
) -> None:
    """Only the signing secrets are needed: the endpoint works with STRIPE_SECRET_KEY unset."""
    settings = make_settings(database_url, stripe_secret_key=None)
    app = create_app(state=build_state(settings, engine))

    async def _session() -> object:
        yield session

    app.dependency_overrides[get_session] = _session
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        response = await deliver(http, _unhandled())
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"


async def test_event_that_cannot_be_stored_is_a_503_so_stripe_retries(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from marketplace_api.webhooks import pipeline

    async def unavailable(*args: object, **kwargs: object) -> bool:
        raise OperationalError("INSERT", {}, ConnectionRefusedError("db down"))

    monkeypatch.setattr(pipeline, "_insert", unavailable)
    response = await deliver(client, _unhandled())
    _assert_rejected(response, 503, "event_store_unavailable")
    assert response.headers["Retry-After"] == "5"
