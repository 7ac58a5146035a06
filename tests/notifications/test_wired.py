"""The state changes that cause emails record them, through the real endpoints and webhook
handlers: a dispute, a released or refused transfer, a failed payout, onboarding requirements, and
a Stripe event that fails for good. (Paid, shipped and refunded: `test_flow.py`.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import User
from marketplace_api.notifications.models import Notification
from marketplace_api.vendors.models import Vendor
from marketplace_api.webhooks import dispatch, pipeline
from marketplace_api.webhooks.dispatch import EventContext
from marketplace_api.webhooks.models import EventStatus, StripeEvent
from tests.conftest import AuthUser
from tests.fixtures.accounts import NEW_REQUIREMENTS, account
from tests.fixtures.money import (
    deliver,
    dispute_json,
    make_paid,
    transfer_handler,
)
from tests.fixtures.stripe import event, stripe_error, stripe_id


async def recorded(session: AsyncSession, kind: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await session.execute(
        select(Notification.recipient, Notification.context)
        .where(Notification.kind == kind)
        .order_by(Notification.recipient)
    )
    return [(recipient, context) for recipient, context in rows.all()]


async def email_of(session: AsyncSession, vendor: Vendor) -> str:
    user = await session.get(User, vendor.user_id)
    assert user is not None
    return user.email


async def test_admin_release_emails_the_vendor_once(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser, stripe_api: respx.MockRouter
) -> None:
    paid = await make_paid(session, amounts=(2000,), fee_bps=1000)
    stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    for _ in range(2):
        response = await client.post(
            f"/v1/admin/orders/{paid.order.id}/release", headers=admin.headers
        )
        assert response.status_code == 200, response.text

    [(recipient, context)] = await recorded(session, "transfer_released")
    assert recipient == await email_of(session, paid.vendor)
    assert (context["amount"], context["order_id"]) == (1800, str(paid.order.id))


async def test_refused_transfer_alerts_the_admins_once(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser, stripe_api: respx.MockRouter
) -> None:
    paid = await make_paid(session)
    stripe_api.post("/v1/transfers").mock(
        return_value=stripe_error(400, code="insufficient_funds", message="Not enough funds")
    )
    await client.post(f"/v1/admin/orders/{paid.order.id}/release", headers=admin.headers)

    [(recipient, context)] = await recorded(session, "transfer_failed")
    assert recipient == admin.user.email
    assert context["order_id"] == str(paid.order.id)
    assert "insufficient_funds" in str(context["error"])
    assert await recorded(session, "transfer_released") == []


async def test_dispute_created_webhook_emails_the_vendor_with_the_deadline(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    paid = await make_paid(session)
    dispute = dispute_json(paid)
    await deliver(client, event("charge.dispute.created", dispute))
    await deliver(client, event("charge.dispute.updated", {**dispute, "status": "under_review"}))

    [(recipient, context)] = await recorded(session, "dispute_opened")
    assert recipient == await email_of(session, paid.vendor)
    assert context["evidence_due_by"] == datetime.fromtimestamp(1793900000, UTC).isoformat()
    assert context["order_ids"] == [str(paid.order.id)]


async def test_failed_payout_webhook_emails_the_vendor(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    paid = await make_paid(session)
    payout = {
        "id": stripe_id("po"),
        "object": "payout",
        "amount": 1800,
        "currency": "usd",
        "status": "failed",
        "failure_code": "account_closed",
        "failure_message": "The bank account has been closed.",
    }
    account_id = str(paid.vendor.stripe_account_id)
    await deliver(client, event("payout.failed", payout, account=account_id), connect=True)

    [(recipient, context)] = await recorded(session, "payout_failed")
    assert recipient == await email_of(session, paid.vendor)
    assert context["failure_code"] == "account_closed"


async def test_account_updated_with_requirements_emails_the_vendor_once(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    paid = await make_paid(session)
    vendor = paid.vendor
    snapshot = account(str(vendor.stripe_account_id), vendor_id=vendor.id, charges_enabled=True)
    for created in (1793000000, 1793000100):  # two updates, same requirements
        evt = event("account.updated", snapshot, account=vendor.stripe_account_id, created=created)
        assert (await deliver(client, evt, connect=True))["status"] == "processed"

    [(recipient, context)] = await recorded(session, "requirements_due")
    assert recipient == await email_of(session, vendor)
    assert context["currently_due"] == sorted(NEW_REQUIREMENTS["currently_due"])


async def test_event_failing_for_good_alerts_every_admin(
    session: AsyncSession,
    admin: AuthUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(_session: AsyncSession, _ctx: EventContext) -> None:
        raise RuntimeError("handler bug")

    monkeypatch.setitem(dispatch.HANDLERS, "test.broken", broken)
    session.add(
        StripeEvent(
            id="evt_broken_for_good",
            type="test.broken",
            livemode=False,
            created=datetime.now(UTC),
            payload=event("test.broken", {"id": "x"}),
            status=EventStatus.pending,
            attempts=pipeline.MAX_ATTEMPTS - 1,
        )
    )
    await session.commit()

    status = await pipeline.apply_event(session, "evt_broken_for_good")

    assert status is EventStatus.failed
    [(recipient, context)] = await recorded(session, "webhook_event_failed")
    assert recipient == admin.user.email
    assert context["event_type"] == "test.broken"
    assert "handler bug" in str(context["last_error"])
