"""Admins see the event store (filters, keyset pages, payload) and retry failed events."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.webhooks.envelope import parse_event
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from marketplace_api.webhooks.pipeline import store_event
from tests.conftest import AuthUser
from tests.fixtures.stripe import event, stripe_id
from tests.webhooks.conftest import FLAKY, TOUCH_USER, Recorder, deliver, user_event

URL = "/v1/admin/webhook-events"


async def test_list_filters_by_status_and_type_and_pages_by_cursor(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser
) -> None:
    ids = []
    for i in range(5):
        evt = event("customer.created", {"id": stripe_id("cus")})
        await store_event(session, parse_event(evt))
        ids.append(evt["id"])
        await session.execute(
            update(StripeEvent)
            .where(StripeEvent.id == evt["id"])
            .values(created_at=StripeEvent.created_at + timedelta(seconds=i))
        )
    other = event("account.updated", {"id": "acct_1"}, account="acct_1")
    await store_event(session, parse_event(other))
    await session.commit()

    seen: list[str] = []
    cursor = None
    while True:
        params = {"type": "customer.created", "status": "pending", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(URL, params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest received first, each exactly once

    only_connect = await client.get(URL, params={"type": "account.updated"}, headers=admin.headers)
    [item] = only_connect.json()["items"]
    assert item["id"] == other["id"]
    assert item["account"] == "acct_1"
    assert item["status"] == "pending"
    assert "payload" not in item

    none = await client.get(URL, params={"status": "failed"}, headers=admin.headers)
    assert none.json() == {"items": [], "next_cursor": None}


async def test_invalid_cursor_is_a_problem(client: httpx.AsyncClient, admin: AuthUser) -> None:
    response = await client.get(URL, params={"cursor": "not-a-cursor"}, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_cursor"


async def test_detail_shows_the_payload(client: httpx.AsyncClient, admin: AuthUser) -> None:
    evt = event("customer.created", {"id": stripe_id("cus")})
    await deliver(client, evt)
    response = await client.get(f"{URL}/{evt['id']}", headers=admin.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["payload"] == evt
    assert body["status"] == "ignored"
    assert body["received_at"]

    missing = await client.get(f"{URL}/evt_missing", headers=admin.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "event_not_found"


async def test_retry_applies_a_failed_event_now(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: AuthUser,
    buyer: AuthUser,
    recorder: Recorder,
) -> None:
    recorder.fail_times = 1
    evt = user_event(FLAKY, buyer.id)
    await deliver(client, evt)
    await session.execute(
        update(StripeEvent)
        .where(StripeEvent.id == evt["id"])
        .values(status=EventStatus.failed, next_attempt_at=None)
    )
    await session.commit()

    response = await client.post(f"{URL}/{evt['id']}/retry", headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "processed"
    assert body["attempts"] == 1  # attempts start again on an admin retry
    assert body["last_error"] is None
    assert recorder.applied == [evt["id"]]

    again = await client.post(f"{URL}/{evt['id']}/retry", headers=admin.headers)
    assert again.status_code == 409
    assert again.json()["code"] == "event_already_processed"
    assert recorder.applied == [evt["id"]]


async def test_retry_of_an_ignored_event_uses_the_handler_registered_since(
    client: httpx.AsyncClient, admin: AuthUser, buyer: AuthUser, recorder: Recorder
) -> None:
    from marketplace_api.webhooks import dispatch

    evt = user_event("test.later_handled", buyer.id)
    assert (await deliver(client, evt)).json()["status"] == "ignored"
    dispatch.HANDLERS["test.later_handled"] = dispatch.HANDLERS[TOUCH_USER]
    try:
        response = await client.post(f"{URL}/{evt['id']}/retry", headers=admin.headers)
    finally:
        del dispatch.HANDLERS["test.later_handled"]
    assert response.json()["status"] == "processed"
    assert recorder.applied == [evt["id"]]


async def test_retry_unknown_event_is_404(client: httpx.AsyncClient, admin: AuthUser) -> None:
    response = await client.post(f"{URL}/evt_nope/retry", headers=admin.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "event_not_found"


async def test_only_admins_see_events(client: httpx.AsyncClient, buyer: AuthUser) -> None:
    assert (await client.get(URL)).status_code == 401
    assert (await client.get(URL, headers=buyer.headers)).status_code == 403
    assert (await client.post(f"{URL}/evt_x/retry", headers=buyer.headers)).status_code == 403
