"""Refunds by charge type, full and partial: the exact Stripe calls, exact vendor/fee shares,
amounts, order status and ledger; the remainder guard; authorization."""

from __future__ import annotations

import re

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.deps import AppState
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.orders.models import Order, OrderStatus
from marketplace_api.payments.models import Payment
from marketplace_api.refunds import service
from marketplace_api.refunds.models import Refund, RefundOrigin, RefundStatus
from marketplace_api.refunds.schemas import RefundCreate
from marketplace_api.release.service import release_order
from marketplace_api.transfers.models import (
    ReleaseTrigger,
    ReversalStatus,
    Transfer,
    TransferReversal,
)
from tests.conftest import AuthUser, make_settings
from tests.fixtures.money import (
    NOW,
    make_paid,
    refund_handler,
    reversal_handler,
    transfer_handler,
    vendor_headers,
)
from tests.fixtures.stripe import form, stripe_error


def _metadata(refund_id: str, paid: object) -> dict[str, str]:
    return {
        "metadata[refund_id]": refund_id,
        "metadata[order_id]": str(paid.order.id),  # type: ignore[attr-defined]
        "metadata[payment_id]": str(paid.payment.id),  # type: ignore[attr-defined]
    }


async def _movements(session: AsyncSession, order_id: object) -> dict[MovementKind, int]:
    rows = (
        await session.execute(
            select(MoneyMovement.kind, MoneyMovement.amount).where(
                MoneyMovement.order_id == order_id
            )
        )
    ).all()
    totals: dict[MovementKind, int] = {}
    for kind, amount in rows:
        totals[kind] = totals.get(kind, 0) + amount
    return totals


@pytest.mark.parametrize(
    ("amount", "vendor_share", "fee_share"), [(None, 1800, 200), (999, 899, 100)]
)
async def test_destination_refund_reverses_the_transfer_and_refunds_the_fee(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: AuthUser,
    stripe_api: respx.MockRouter,
    amount: int | None,
    vendor_share: int,
    fee_share: int,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    route = stripe_api.post("/v1/refunds").mock(side_effect=refund_handler(with_reversal=True))
    body = {"reason": "requested_by_customer"} | ({"amount": amount} if amount else {})

    response = await client.post(
        f"/v1/admin/payments/{paid.payment.id}/refunds", json=body, headers=admin.headers
    )

    assert response.status_code == 201, response.text
    refund = response.json()["refunds"][0]
    refunded = amount or 2000
    assert refund["status"] == "succeeded"
    assert (refund["vendor_share"], refund["fee_share"]) == (vendor_share, fee_share)
    request = route.calls.last.request
    assert form(request) == {
        "payment_intent": paid.payment.stripe_payment_intent_id,
        "amount": str(refunded),
        "reason": "requested_by_customer",
        "reverse_transfer": "true",
        "refund_application_fee": "true",
        **_metadata(refund["id"], paid),
    }
    assert request.headers["Idempotency-Key"] == f"refund:{refund['id']}"
    assert "Stripe-Account" not in request.headers
    order = await session.get(Order, paid.order.id, populate_existing=True)
    assert order is not None
    assert order.amount_refunded == refunded
    assert order.status is (
        OrderStatus.refunded if amount is None else OrderStatus.partially_refunded
    )
    payment = await session.get(Payment, paid.payment.id, populate_existing=True)
    assert payment is not None
    assert payment.amount_refunded == refunded
    moves = await _movements(session, paid.order.id)
    assert moves[MovementKind.refund] == -refunded
    assert moves[MovementKind.refund_fee_share] == -fee_share
    assert moves[MovementKind.transfer_reversal] == -vendor_share
    balance = await ledger.payment_balance(session, paid.payment)
    assert balance.held == 0


async def test_destination_refund_without_fee_refund_takes_it_all_from_the_vendor(
    session: AsyncSession, app_state: AppState, database_url: str, stripe_api: respx.MockRouter
) -> None:
    settings = make_settings(database_url, refund_application_fee=False)
    paid = await make_paid(session, charge_type=ChargeType.destination)
    route = stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    assert app_state.stripe is not None
    refund = await service.create_refund(
        session,
        app_state.stripe,
        settings,
        paid.order.id,
        RefundCreate(amount=999),
        origin=RefundOrigin.admin,
        actor_id=None,
        now=NOW,
    )
    assert form(route.calls.last.request)["refund_application_fee"] == "false"
    assert (refund.fee_share, refund.fee_refunded) == (100, 0)
    moves = await _movements(session, paid.order.id)
    assert MovementKind.refund_fee_share not in moves
    assert moves[MovementKind.transfer_reversal] == -999
    assert (await ledger.payment_balance(session, paid.payment)).held == 0


@pytest.mark.parametrize("amount", [None, 700])
async def test_direct_refund_is_made_on_the_connected_account(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: AuthUser,
    stripe_api: respx.MockRouter,
    amount: int | None,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.direct)
    route = stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    body = {"order_id": str(paid.order.id)} | ({"amount": amount} if amount else {})
    response = await client.post(
        f"/v1/admin/payments/{paid.payment.id}/refunds", json=body, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    refund = response.json()["refunds"][0]
    request = route.calls.last.request
    assert form(request) == {
        "payment_intent": paid.payment.stripe_payment_intent_id,
        "amount": str(amount or 2000),
        "reason": "requested_by_customer",
        "refund_application_fee": "true",
        **_metadata(refund["id"], paid),
    }
    assert request.headers["Stripe-Account"] == paid.vendor.stripe_account_id
    assert request.headers["Idempotency-Key"] == f"refund:{refund['id']}"
    assert refund["vendor_share"] + refund["fee_share"] == (amount or 2000)
    assert (await ledger.payment_balance(session, paid.payment)).held == 0


async def test_separate_refund_before_release_reduces_the_transfer(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.separate)
    refunds = stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    transfers_route = stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    headers = vendor_headers(app_state.settings, paid.vendor)

    response = await client.post(
        f"/v1/vendor/orders/{paid.order.id}/refunds", json={"amount": 500}, headers=headers
    )

    assert response.status_code == 201, response.text
    refund = response.json()
    assert form(refunds.calls.last.request) == {
        "payment_intent": paid.payment.stripe_payment_intent_id,
        "amount": "500",
        "reason": "requested_by_customer",
        **_metadata(refund["id"], paid),
    }
    assert (refund["vendor_share"], refund["fee_share"], refund["origin"]) == (450, 50, "vendor")
    assert (await ledger.payment_balance(session, paid.payment)).held == 1350
    assert app_state.stripe is not None
    transfer = await release_order(
        session, app_state.stripe, paid.order.id, trigger=ReleaseTrigger.admin, now=NOW
    )
    assert transfer.amount == 1350
    assert form(transfers_route.calls.last.request)["amount"] == "1350"
    assert (await ledger.payment_balance(session, paid.payment)).held == 0


@pytest.mark.parametrize("amount", [None, 500])
async def test_separate_refund_after_release_reverses_the_vendor_share(
    session: AsyncSession, app_state: AppState, stripe_api: respx.MockRouter, amount: int | None
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.separate)
    stripe_api.post("/v1/transfers").mock(side_effect=transfer_handler)
    refunds = stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    assert app_state.stripe is not None
    transfer = await release_order(
        session, app_state.stripe, paid.order.id, trigger=ReleaseTrigger.admin, now=NOW
    )
    reversals = stripe_api.post(
        url__regex=rf"/v1/transfers/{transfer.stripe_transfer_id}/reversals$"
    ).mock(side_effect=lambda r: reversal_handler(r, str(transfer.stripe_transfer_id)))

    refund = await service.create_refund(
        session,
        app_state.stripe,
        app_state.settings,
        paid.order.id,
        RefundCreate(amount=amount),
        origin=RefundOrigin.admin,
        actor_id=None,
        now=NOW,
    )

    assert refund.status is RefundStatus.succeeded
    assert "reverse_transfer" not in form(refunds.calls.last.request)
    vendor_share = 1800 if amount is None else 450
    reversal = (await session.execute(select(TransferReversal))).scalar_one()
    request = reversals.calls.last.request
    assert form(request) == {
        "amount": str(vendor_share),
        "metadata[refund_id]": str(refund.id),
        "metadata[order_id]": str(paid.order.id),
        "metadata[transfer_id]": str(transfer.id),
        "metadata[reversal_id]": str(reversal.id),
    }
    assert request.headers["Idempotency-Key"] == f"refund:{refund.id}:reversal"
    assert reversal.status is ReversalStatus.succeeded
    row = await session.get(Transfer, transfer.id, populate_existing=True)
    assert row is not None
    assert row.amount_reversed == vendor_share
    assert (await ledger.payment_balance(session, paid.payment)).held == 0


async def test_partial_refunds_split_exactly_and_add_up_to_the_order_split(
    session: AsyncSession, app_state: AppState, stripe_api: respx.MockRouter
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination, amounts=(1001,))
    assert (paid.order.vendor_amount, paid.order.platform_fee) == (901, 100)
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    assert app_state.stripe is not None
    made = []
    for amount in (333, 333, 1, 334):
        made.append(
            await service.create_refund(
                session,
                app_state.stripe,
                app_state.settings,
                paid.order.id,
                RefundCreate(amount=amount),
                origin=RefundOrigin.admin,
                actor_id=None,
                now=NOW,
            )
        )
    assert all(r.vendor_share + r.fee_share == r.amount for r in made)
    assert sum(r.vendor_share for r in made) == 901
    assert sum(r.fee_share for r in made) == 100
    order = await session.get(Order, paid.order.id, populate_existing=True)
    assert order is not None
    assert order.status is OrderStatus.refunded


async def test_refund_beyond_the_remainder_is_refused_before_stripe(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser, stripe_api: respx.MockRouter
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    url = f"/v1/admin/payments/{paid.payment.id}/refunds"
    assert (await client.post(url, json={"amount": 1500}, headers=admin.headers)).status_code == 201
    response = await client.post(url, json={"amount": 501}, headers=admin.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "refund_exceeds_remainder"
    assert response.json()["refundable"] == 500
    assert len(stripe_api.calls) == 1


async def test_refund_stripe_refuses_is_failed_and_releases_its_reservation(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser, stripe_api: respx.MockRouter
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    stripe_api.post("/v1/refunds").mock(
        side_effect=[stripe_error(400, code="charge_already_refunded"), refund_handler()]
    )
    url = f"/v1/admin/payments/{paid.payment.id}/refunds"
    refused = await client.post(url, json={}, headers=admin.headers)
    assert refused.status_code == 502
    assert refused.json()["code"] == "stripe_request_rejected"
    failed = (await session.execute(select(Refund))).scalar_one()
    assert failed.status is RefundStatus.failed
    assert failed.failure_reason == "charge_already_refunded"
    again = await client.post(url, json={}, headers=admin.headers)
    assert again.status_code == 201
    assert again.json()["refunds"][0]["amount"] == 2000


async def test_refund_timeout_stays_pending_and_the_job_retries_it_with_the_same_key(
    session: AsyncSession, app_state: AppState, stripe_api: respx.MockRouter
) -> None:
    from contextlib import asynccontextmanager

    paid = await make_paid(session, charge_type=ChargeType.destination)
    route = stripe_api.post("/v1/refunds").mock(
        side_effect=[stripe_error(503, type_="api_error"), refund_handler()]
    )
    assert app_state.stripe is not None
    refund = await service.create_refund(
        session,
        app_state.stripe,
        app_state.settings,
        paid.order.id,
        RefundCreate(),
        origin=RefundOrigin.admin,
        actor_id=None,
        now=NOW,
    )
    assert refund.status is RefundStatus.pending
    assert refund.last_error
    assert refund.next_attempt_at is not None

    @asynccontextmanager
    async def sessions():  # type: ignore[no-untyped-def]
        yield session

    attempted = await service.retry_failed_refunds(
        sessions, app_state.stripe, now=refund.next_attempt_at, settings=app_state.settings
    )
    assert attempted == 1
    keys = {c.request.headers["Idempotency-Key"] for c in route.calls}
    assert keys == {f"refund:{refund.id}"}
    row = await session.get(Refund, refund.id, populate_existing=True)
    assert row is not None
    assert row.status is RefundStatus.succeeded


async def test_vendor_cannot_refund_another_vendors_order_and_buyers_cannot_refund(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    buyer: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    mine = await make_paid(session)
    theirs = await make_paid(session)
    headers = vendor_headers(app_state.settings, mine.vendor)
    other = await client.post(
        f"/v1/vendor/orders/{theirs.order.id}/refunds", json={}, headers=headers
    )
    assert other.status_code == 404
    assert (
        await client.get(f"/v1/vendor/orders/{theirs.order.id}", headers=headers)
    ).status_code == 404
    as_buyer = await client.post(
        f"/v1/vendor/orders/{mine.order.id}/refunds", json={}, headers=buyer.headers
    )
    assert as_buyer.status_code == 403
    assert not stripe_api.calls
    assert re.fullmatch(r"order_not_found", other.json()["code"])


async def test_admin_refund_of_a_multi_vendor_payment_needs_the_order_for_a_partial_amount(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser, stripe_api: respx.MockRouter
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.separate, amounts=(1000, 3000))
    route = stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    url = f"/v1/admin/payments/{paid.payment.id}/refunds"
    ambiguous = await client.post(url, json={"amount": 100}, headers=admin.headers)
    assert ambiguous.status_code == 422
    assert ambiguous.json()["code"] == "order_required"
    everything = await client.post(url, json={}, headers=admin.headers)
    assert everything.status_code == 201
    made = everything.json()["refunds"]
    assert sorted(r["amount"] for r in made) == [1000, 3000]
    assert {form(c.request)["metadata[order_id]"] for c in route.calls} == {
        str(o.id) for o in paid.orders
    }
