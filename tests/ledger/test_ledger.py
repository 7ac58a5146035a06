"""The money-movement ledger: the per-payment invariant over a mixed scenario, immutability,
exactly-once recording, and the admin and vendor reads built on it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.deps import AppState
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MoneyMovement
from marketplace_api.orders.models import Order
from marketplace_api.payments.ledger import record_payment_succeeded
from marketplace_api.payments.models import Payment
from marketplace_api.refunds import service as refunds
from marketplace_api.refunds.models import Refund, RefundOrigin, RefundStatus
from marketplace_api.refunds.schemas import RefundCreate
from marketplace_api.release.service import release_order
from marketplace_api.transfers.models import ReleaseTrigger, Transfer, TransferStatus
from tests.conftest import AuthUser
from tests.fixtures.money import (
    NOW,
    Paid,
    make_paid,
    refund_handler,
    reversal_handler,
    transfer_handler,
    vendor_headers,
)
from tests.fixtures.statements import Statements


async def _held_from_domain(session: AsyncSession, payment: Payment) -> int:
    """What the platform still holds for vendors, from orders/refunds/transfers (not the
    ledger): separate charges' orders without a made transfer keep vendor_amount minus the
    vendor share of their succeeded refunds; everything else holds nothing."""
    if payment.charge_type is not ChargeType.separate:
        return 0
    held = 0
    orders = (await session.execute(select(Order).where(Order.payment_id == payment.id))).scalars()
    for order in orders:
        transfer = (
            await session.execute(select(Transfer).where(Transfer.order_id == order.id))
        ).scalar_one_or_none()
        if transfer is not None and transfer.status in (
            TransferStatus.paid,
            TransferStatus.skipped,
        ):
            continue
        refunded_share = (
            await session.execute(
                select(func.coalesce(func.sum(Refund.vendor_share), 0)).where(
                    Refund.order_id == order.id, Refund.status == RefundStatus.succeeded
                )
            )
        ).scalar_one()
        held += order.vendor_amount - int(refunded_share)
    return held


async def test_every_payment_balances_over_a_mixed_scenario(
    session: AsyncSession, app_state: AppState, stripe_api: respx.MockRouter
) -> None:
    """For every payment: charge - refunds = transfers + platform fee + held, where
    charge = Σ charge, refunds = -Σ refund, transfers = Σ transfer + Σ transfer_reversal (what
    vendors keep), platform fee = Σ platform_fee + Σ refund_fee_share (what the platform
    keeps), and held is computed independently from orders, refunds and transfers."""
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    stripe_api.post(url__regex=r"/v1/transfers/(?P<tr>tr_\w+)/reversals$").mock(
        side_effect=lambda request, tr: reversal_handler(request, tr)
    )
    gateway = app_state.stripe
    assert gateway is not None

    async def refund(order: Order, amount: int | None) -> None:
        await refunds.create_refund(
            session,
            gateway,
            app_state.settings,
            order.id,
            RefundCreate(amount=amount),
            origin=RefundOrigin.admin,
            actor_id=None,
            now=NOW,
        )

    async def release(order: Order) -> None:
        await release_order(session, gateway, order.id, trigger=ReleaseTrigger.admin, now=NOW)

    payments: list[Paid] = []
    dest = await make_paid(
        session, charge_type=ChargeType.destination, amounts=(3333,), fee_bps=725
    )
    await refund(dest.order, 1001)
    await refund(dest.order, 7)
    direct = await make_paid(session, charge_type=ChargeType.direct, amounts=(5000,), fee_bps=1250)
    await refund(direct.order, None)
    cart = await make_paid(
        session, charge_type=ChargeType.separate, amounts=(1999, 2501, 777), fee_bps=1000
    )
    await refund(cart.orders[0], 333)  # before release: smaller transfer
    await release(cart.orders[0])
    await release(cart.orders[1])
    await refund(cart.orders[1], 1250)  # after release: reversal
    await refund(cart.orders[2], 100)  # never released: still held
    held = await make_paid(session, charge_type=ChargeType.separate, amounts=(4242,), fee_bps=333)
    payments += [dest, direct, cart, held]

    for paid in payments:
        payment = await session.get(Payment, paid.payment.id, populate_existing=True)
        assert payment is not None
        balance = await ledger.payment_balance(session, payment)
        expected_held = await _held_from_domain(session, payment)
        assert balance.charge == payment.amount
        assert -balance.refunds == payment.amount_refunded
        assert balance.charge + balance.refunds == (
            balance.transfers + balance.platform_fee + expected_held
        ), paid.payment.charge_type
        assert balance.held == expected_held
    # 777 at 10 %: fee 78, vendor 699; the refund of 100 took 90 of the vendor share
    assert (await ledger.payment_balance(session, cart.payment)).held == 699 - 90
    assert (await ledger.payment_balance(session, held.payment)).held == held.order.vendor_amount


async def test_movements_are_recorded_once_and_cannot_be_changed(
    session: AsyncSession,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    before = (await session.execute(select(func.count()).select_from(MoneyMovement))).scalar()
    await record_payment_succeeded(session, paid.payment)  # a replay
    await session.commit()
    after = (await session.execute(select(func.count()).select_from(MoneyMovement))).scalar()
    assert before == after == 3  # charge, platform_fee, transfer
    for statement in (
        "UPDATE money_movements SET amount = amount + 1",
        "DELETE FROM money_movements",
    ):
        with pytest.raises(DBAPIError, match="immutable"):
            async with session.begin_nested():
                await session.execute(text(statement))


async def test_a_success_is_recorded_in_one_statement_stripe_fee_included(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    paid = await make_paid(
        session, charge_type=ChargeType.destination, amounts=(2000, 3000), record_ledger=False
    )
    paid.payment.stripe_fee = 175
    await session.flush()
    with Statements(engine) as statements:
        await record_payment_succeeded(session, paid.payment, paid.orders)
    assert statements.seen == ["INSERT money_movements"]  # one round trip, whatever the rows
    rows = (
        await session.execute(
            select(MoneyMovement.kind, MoneyMovement.order_id, MoneyMovement.amount)
        )
    ).all()
    by_kind: dict[str, list[int]] = {}
    for kind, order_id, amount in rows:
        by_kind.setdefault(kind.value, []).append(amount)
        assert (order_id is None) == (kind.value == "stripe_fee")
    assert {kind: sorted(amounts) for kind, amounts in by_kind.items()} == {
        "charge": [2000, 3000],
        "platform_fee": [200, 300],
        "transfer": [1800, 2700],
        "stripe_fee": [-175],
    }
    await record_payment_succeeded(session, paid.payment)  # a replay: nothing new
    assert (await session.execute(select(func.count()).select_from(MoneyMovement))).scalar() == 7


async def test_admin_sees_a_payments_full_history_in_time_order(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: AuthUser,
    app_state: AppState,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.separate)
    stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    assert app_state.stripe is not None
    await refunds.create_refund(
        session,
        app_state.stripe,
        app_state.settings,
        paid.order.id,
        RefundCreate(amount=200),
        origin=RefundOrigin.admin,
        actor_id=None,
        now=NOW + timedelta(hours=1),
    )
    await release_order(
        session,
        app_state.stripe,
        paid.order.id,
        trigger=ReleaseTrigger.admin,
        now=NOW + timedelta(hours=2),
    )

    response = await client.get(f"/v1/admin/payments/{paid.payment.id}", headers=admin.headers)

    assert response.status_code == 200
    body = response.json()
    assert [m["kind"] for m in body["movements"]] == [
        "charge",
        "platform_fee",
        "refund",
        "refund_fee_share",
        "transfer",
    ]
    assert [m["amount"] for m in body["movements"]] == [2000, 200, -200, -20, 1620]
    assert body["balance"] | {"currency": "usd"} == {
        "currency": "usd",
        "charge": 2000,
        "refunds": -200,
        "transfers": 1620,
        "platform_fee": 180,
        "held": 0,
        "disputes": 0,
        "stripe_fee": 0,
    }
    assert body["transfers"][0]["amount"] == 1620
    assert body["refunds"][0]["vendor_share"] == 180
    missing = await client.get(f"/v1/admin/payments/{uuid.uuid4()}", headers=admin.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "payment_not_found"


async def test_vendor_statement_pages_through_its_own_movements(
    client: httpx.AsyncClient, session: AsyncSession, app_state: AppState
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    await make_paid(session, charge_type=ChargeType.destination)  # another vendor's
    headers = vendor_headers(app_state.settings, paid.vendor)
    first = (await client.get("/v1/vendor/payments?limit=2", headers=headers)).json()
    assert len(first["items"]) == 2
    second = (
        await client.get(
            f"/v1/vendor/payments?limit=2&cursor={first['next_cursor']}", headers=headers
        )
    ).json()
    items = first["items"] + second["items"]
    assert second["next_cursor"] is None
    assert sorted(m["kind"] for m in items) == ["charge", "platform_fee", "transfer"]
    assert {m["vendor_id"] for m in items} == {str(paid.vendor.id)}
    only = (await client.get("/v1/vendor/payments?kind=transfer", headers=headers)).json()
    assert [m["amount"] for m in only["items"]] == [1800]
    bad = await client.get("/v1/vendor/payments?cursor=nope", headers=headers)
    assert bad.status_code == 422


async def test_summary_report_per_currency(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser
) -> None:
    await make_paid(session, charge_type=ChargeType.destination, amounts=(2000,))
    await make_paid(session, charge_type=ChargeType.separate, amounts=(1000,))
    await make_paid(session, charge_type=ChargeType.separate, currency="jpy", amounts=(5000,))
    await make_paid(
        session, charge_type=ChargeType.destination, succeeded_at=NOW - timedelta(days=40)
    )
    start, end = (NOW - timedelta(days=1)).isoformat(), (NOW + timedelta(days=1)).isoformat()

    response = await client.get(
        "/v1/admin/reports/summary", params={"from": start, "to": end}, headers=admin.headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    usd, jpy = body["currencies"][1], body["currencies"][0]
    assert (jpy["currency"], jpy["gross_volume"], jpy["held_balance"]) == ("jpy", 5000, 4500)
    assert usd["gross_volume"] == 3000
    assert usd["platform_fees"] == 300
    assert usd["transfers"] == 1800
    assert usd["held_balance"] == 900
    reversed_period = await client.get(
        "/v1/admin/reports/summary", params={"from": end, "to": start}, headers=admin.headers
    )
    assert reversed_period.status_code == 422
