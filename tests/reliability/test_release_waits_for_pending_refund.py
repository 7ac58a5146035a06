"""A release never nets out a refund whose outcome Stripe has not settled: if that refund then
failed, the vendor would be underpaid for good (found by the reliability suite)."""

from __future__ import annotations

import uuid

import httpx
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.config import Settings
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.refunds.models import Refund, RefundStatus
from marketplace_api.refunds.service import retry_failed_refunds
from marketplace_api.transfers.models import Transfer
from tests.conftest import AuthUser
from tests.fixtures.money import make_paid, transfer_handler
from tests.fixtures.stripe import form, stripe_error


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("The read operation timed out", request=request)


async def test_release_waits_for_a_pending_refund_and_pays_in_full_when_it_fails(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    settings: Settings,
    admin: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session)  # separate charge of 2000, fee 200: vendor owed 1800
    refunds = stripe_api.post("/v1/refunds").mock(side_effect=_timeout)
    transfers = stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)

    made = await client.post(
        f"/v1/admin/payments/{paid.payment.id}/refunds",
        json={"order_id": str(paid.order.id), "amount": 1000},
        headers=admin.headers,
    )
    assert made.status_code == 201, made.text
    (body,) = made.json()["refunds"]
    assert body["status"] == "pending"  # Stripe's answer never came

    release = f"/v1/admin/orders/{paid.order.id}/release"
    blocked = await client.post(release, headers=admin.headers)
    assert blocked.status_code == 409, blocked.text
    assert blocked.json()["code"] == "order_not_releasable"
    assert blocked.json()["reason"] == "refund_pending"
    assert transfers.call_count == 0

    # Stripe refuses the refund on the retry: nothing was refunded, the vendor is owed 1800.
    refunds.mock(side_effect=None, return_value=stripe_error(400, code="charge_already_refunded"))
    refund = await session.scalar(
        select(Refund)
        .where(Refund.id == uuid.UUID(body["id"]))
        .execution_options(populate_existing=True)
    )
    assert refund is not None
    assert refund.next_attempt_at is not None
    await retry_failed_refunds(sessions, gateway, now=refund.next_attempt_at, settings=settings)
    await session.refresh(refund)
    assert refund.status is RefundStatus.failed

    released = await client.post(release, headers=admin.headers)
    assert released.status_code in (200, 201), released.text
    assert transfers.call_count == 1
    assert form(transfers.calls.last.request)["amount"] == "1800"
    transfer = await session.scalar(select(Transfer).where(Transfer.order_id == paid.order.id))
    assert transfer is not None
    assert transfer.amount == 1800
