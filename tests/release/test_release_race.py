"""Twenty release attempts at once — admins, the buyer confirming delivery and the auto-release
job, on separate connections — make exactly one transfer row and one Stripe transfer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import httpx
import respx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.accounts.models import Role
from marketplace_api.config import Settings
from marketplace_api.db import create_sessionmaker
from marketplace_api.integrations.stripe import StripeGateway, build_stripe_client
from marketplace_api.release import jobs as service
from marketplace_api.transfers.models import Transfer, TransferStatus
from tests.conftest import MakeUser
from tests.fixtures.money import (
    NOW,
    days_ago,
    make_paid,
    transfer_handler,
)


async def test_twenty_concurrent_releases_make_one_transfer(
    committed_client: httpx.AsyncClient,
    committed_engine: AsyncEngine,
    make_committed_user: MakeUser,
    settings: Settings,
    stripe_api: respx.MockRouter,
) -> None:
    admin = await make_committed_user(Role.admin)
    buyer = await make_committed_user(Role.buyer)
    async with AsyncSession(committed_engine, expire_on_commit=False) as session:
        paid = await make_paid(session, buyer_id=buyer.id, shipped_at=days_ago(20))
    order_id = paid.order.id

    async def slow_transfer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)  # keep the call in flight while the others arrive
        return transfer_handler(request)

    route = stripe_api.post("/v1/transfers").mock(side_effect=slow_transfer)
    client = build_stripe_client(settings)
    assert client is not None
    gateway = StripeGateway(client)
    sessionmaker = create_sessionmaker(committed_engine)

    calls: list[Awaitable[object]] = []
    for i in range(20):
        if i % 3 == 0:
            calls.append(
                committed_client.post(f"/v1/admin/orders/{order_id}/release", headers=admin.headers)
            )
        elif i % 3 == 1:
            calls.append(
                committed_client.post(
                    f"/v1/buyer/orders/{order_id}/confirm-delivery", headers=buyer.headers
                )
            )
        else:
            calls.append(
                service.release_due_orders(sessionmaker, gateway, now=NOW, settings=settings)
            )
    results = await asyncio.gather(*calls)

    transfer_ids = set()
    for result in results:
        if isinstance(result, httpx.Response):
            assert result.status_code == 200, result.text
            body = result.json()
            # the admin answers the transfer; the buyer's confirmation carries it
            transfer = body["transfer"] if "fulfilment_status" in body else body
            transfer_ids.add(transfer["id"])
    assert len(transfer_ids) == 1
    assert route.call_count == 1
    async with AsyncSession(committed_engine) as session:
        rows = (await session.execute(select(Transfer))).scalars().all()
        assert len(rows) == 1
        assert rows[0].status is TransferStatus.paid
        assert rows[0].amount == 1800
        assert str(rows[0].id) in transfer_ids
        count = await session.execute(select(func.count()).select_from(Transfer))
        assert count.scalar() == 1
