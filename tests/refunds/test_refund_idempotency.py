"""Refund POSTs honour Idempotency-Key: a client that lost the answer to a partial refund and
retries gets the same refund back, and Stripe is asked once."""

from __future__ import annotations

import httpx
import respx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import User
from marketplace_api.accounts.security import create_access_token
from marketplace_api.config import ChargeType, Settings
from marketplace_api.refunds.models import Refund
from tests.conftest import AuthUser
from tests.fixtures.money import make_paid, refund_handler


async def test_admin_partial_refund_retried_with_the_same_key_refunds_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    route = stripe_api.post("/v1/refunds").mock(side_effect=refund_handler(with_reversal=True))
    url = f"/v1/admin/payments/{paid.payment.id}/refunds"
    body = {"order_id": str(paid.order.id), "amount": 500}
    headers = {**admin.headers, "Idempotency-Key": "refund-attempt-1"}

    first = await client.post(url, json=body, headers=headers)
    again = await client.post(url, json=body, headers=headers)
    other = await client.post(url, json={**body, "amount": 600}, headers=headers)

    assert first.status_code == 201, first.text
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert route.call_count == 1
    count = await session.scalar(select(func.count()).select_from(Refund))
    assert count == 1


async def test_vendor_refund_retried_with_the_same_key_refunds_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    vendor_user = await session.get(User, paid.vendor.user_id)
    assert vendor_user is not None
    token = create_access_token(settings, vendor_user.id, vendor_user.role)
    route = stripe_api.post("/v1/refunds").mock(side_effect=refund_handler(with_reversal=True))
    url = f"/v1/vendor/orders/{paid.order.id}/refunds"
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "vendor-refund-1"}

    first = await client.post(url, json={"amount": 700}, headers=headers)
    again = await client.post(url, json={"amount": 700}, headers=headers)

    assert first.status_code == 201, first.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert route.call_count == 1
