"""Concurrency on real separate connections: refunds never exceed the order, and a refund racing
the release ends consistent (a smaller transfer, or a reversal of the vendor share)."""

from __future__ import annotations

import asyncio

import httpx
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.accounts.models import Role
from marketplace_api.config import ChargeType, Settings
from marketplace_api.ledger import service as ledger
from marketplace_api.payments.models import Payment
from marketplace_api.refunds.models import Refund, RefundStatus
from marketplace_api.transfers.models import ReversalStatus, Transfer, TransferReversal
from tests.conftest import MakeUser
from tests.fixtures.money import (
    make_paid,
    refund_handler,
    reversal_handler,
    transfer_handler,
)


async def test_concurrent_refunds_never_exceed_the_order(
    committed_client: httpx.AsyncClient,
    committed_engine: AsyncEngine,
    make_committed_user: MakeUser,
    stripe_api: respx.MockRouter,
) -> None:
    admin = await make_committed_user(Role.admin)
    async with AsyncSession(committed_engine, expire_on_commit=False) as session:
        paid = await make_paid(session, charge_type=ChargeType.destination)
    route = stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    url = f"/v1/admin/payments/{paid.payment.id}/refunds"

    responses = await asyncio.gather(
        *[committed_client.post(url, json={"amount": 700}, headers=admin.headers) for _ in range(6)]
    )

    created = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 409]
    assert len(created) == 2  # 700 + 700 <= 2000 < 3 * 700
    assert len(refused) == 4
    assert {r.json()["code"] for r in refused} == {"refund_exceeds_remainder"}
    assert route.call_count == 2
    async with AsyncSession(committed_engine) as session:
        payment = await session.get(Payment, paid.payment.id)
        assert payment is not None
        assert payment.amount_refunded == 1400


async def test_refund_racing_the_release_ends_consistent(
    committed_client: httpx.AsyncClient,
    committed_engine: AsyncEngine,
    make_committed_user: MakeUser,
    settings: Settings,
    stripe_api: respx.MockRouter,
) -> None:
    admin = await make_committed_user(Role.admin)
    async with AsyncSession(committed_engine, expire_on_commit=False) as session:
        paid = await make_paid(session, charge_type=ChargeType.separate)

    async def slow_transfer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return transfer_handler(request)

    stripe_api.post("/v1/transfers").mock(side_effect=slow_transfer)
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    reversals = stripe_api.post(url__regex=r"/v1/transfers/(?P<tr>tr_\w+)/reversals$").mock(
        side_effect=lambda request, tr: reversal_handler(request, tr)
    )

    release, refund = await asyncio.gather(
        committed_client.post(f"/v1/admin/orders/{paid.order.id}/release", headers=admin.headers),
        committed_client.post(
            f"/v1/admin/payments/{paid.payment.id}/refunds",
            json={"amount": 500},
            headers=admin.headers,
        ),
    )

    assert refund.status_code == 201, refund.text
    if release.status_code == 409:
        # The refund was reserved first and was still pending at Stripe when the release looked:
        # the release refuses rather than net out a refund that may yet fail. Once it settles,
        # the release goes through with the reduced amount.
        assert release.json()["reason"] == "refund_pending", release.text
        release = await committed_client.post(
            f"/v1/admin/orders/{paid.order.id}/release", headers=admin.headers
        )
    assert release.status_code == 200, release.text
    async with AsyncSession(committed_engine) as session:
        transfer = (await session.execute(select(Transfer))).scalar_one()
        made = (await session.execute(select(Refund))).scalar_one()
        assert made.status is RefundStatus.succeeded
        assert (made.vendor_share, made.fee_share) == (450, 50)
        reversal = (await session.execute(select(TransferReversal))).scalar_one_or_none()
        if transfer.amount == 1800:  # released first: the refund took the share back
            assert reversal is not None
            assert reversal.status is ReversalStatus.succeeded
            assert reversal.amount == 450
            assert reversals.call_count == 1
        else:  # refunded first: the transfer carries the reduced amount
            assert transfer.amount == 1350
            assert reversal is None
            assert reversals.call_count == 0
        payment = await session.get(Payment, paid.payment.id)
        assert payment is not None
        balance = await ledger.payment_balance(session, payment)
        assert balance.charge + balance.refunds == balance.transfers + balance.platform_fee
        assert balance.held == 0
        assert (balance.charge, balance.refunds, balance.transfers, balance.platform_fee) == (
            2000,
            -500,
            1350,
            150,
        )
