"""`application_fee.refunded`: Stripe's fee refunds reconciled against our split; a difference
of a minor unit is recorded once, keeping the ledger's per-payment invariant."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.deps import AppState
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MoneyMovement
from marketplace_api.payments.models import Payment
from marketplace_api.refunds import service
from marketplace_api.refunds.models import RefundOrigin
from marketplace_api.refunds.schemas import RefundCreate
from tests.fixtures.money import (
    NOW,
    Paid,
    deliver,
    make_paid,
    refund_handler,
)
from tests.fixtures.stripe import event, stripe_id


async def _refund(session: AsyncSession, app_state: AppState, paid: Paid, amount: int) -> int:
    """A succeeded refund with the fee refunded; its fee part as we split it."""
    assert app_state.stripe is not None
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
    assert refund.fee_refunded > 0
    return refund.fee_refunded


def _fee(paid: Paid, fee_id: str, refunded: list[int], **extra: Any) -> dict[str, Any]:
    payment = paid.payment
    return {
        "id": fee_id,
        "object": "application_fee",
        "account": paid.vendor.stripe_account_id,
        "amount": payment.platform_fee,
        "amount_refunded": sum(refunded),
        "charge": payment.stripe_charge_id,
        "currency": payment.currency,
        "refunded": sum(refunded) == payment.platform_fee,
        "refunds": {
            "object": "list",
            "data": [
                {"id": stripe_id("fr"), "object": "fee_refund", "amount": a, "fee": fee_id}
                for a in refunded
            ],
            "has_more": False,
        },
        **extra,
    }


async def _adjustments(session: AsyncSession) -> list[tuple[str, int]]:
    rows = await session.execute(
        select(MoneyMovement.kind, MoneyMovement.amount)
        .where(MoneyMovement.details["adjustment"].astext.is_not(None))
        .order_by(MoneyMovement.seq)
    )
    return [(kind.value, amount) for kind, amount in rows]


@pytest.mark.parametrize("off_by", [1, -1])
async def test_a_fee_refund_one_unit_off_our_split_is_recorded_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    stripe_api: respx.MockRouter,
    off_by: int,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination, amounts=(1001,))
    payment_id = paid.payment.id
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    first = await _refund(session, app_state, paid, 333)
    fee_id = stripe_id("fee")
    one = event("application_fee.refunded", _fee(paid, fee_id, [first + off_by]))

    assert (await deliver(client, one))["status"] == "processed"
    assert (await deliver(client, one))["duplicate"] is True
    replay = event("application_fee.refunded", _fee(paid, fee_id, [first + off_by]))
    assert (await deliver(client, replay))["status"] == "processed"  # another event, same state

    assert await _adjustments(session) == [
        ("refund_fee_share", -off_by),
        ("transfer_reversal", off_by),
    ]
    payment = await session.get(Payment, payment_id, populate_existing=True)
    assert payment is not None
    balance = await ledger.payment_balance(session, payment)
    assert balance.charge + balance.refunds == balance.transfers + balance.platform_fee
    assert balance.held == 0

    # A second refund that Stripe splits like us: nothing more; an older event arriving after
    # it (one fee refund where we have two) is left alone.
    second = await _refund(session, app_state, paid, 333)
    two = event("application_fee.refunded", _fee(paid, fee_id, [first + off_by, second]))
    assert (await deliver(client, two))["status"] == "processed"
    older = event("application_fee.refunded", _fee(paid, fee_id, [first]))
    assert (await deliver(client, older))["status"] == "processed"
    assert await _adjustments(session) == [
        ("refund_fee_share", -off_by),
        ("transfer_reversal", off_by),
    ]


async def test_fee_refund_equal_to_our_split_records_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    ours = await _refund(session, app_state, paid, 500)
    before = (await session.execute(select(MoneyMovement.id))).scalars().all()
    evt = event("application_fee.refunded", _fee(paid, stripe_id("fee"), [ours]))
    assert (await deliver(client, evt))["status"] == "processed"
    after = (await session.execute(select(MoneyMovement.id))).scalars().all()
    assert after == before


async def test_fee_of_another_vendor_account_is_mismatched(
    client: httpx.AsyncClient,
    session: AsyncSession,
    app_state: AppState,
    stripe_api: respx.MockRouter,
) -> None:
    paid = await make_paid(session, charge_type=ChargeType.destination)
    stripe_api.post("/v1/refunds").mock(side_effect=refund_handler())
    ours = await _refund(session, app_state, paid, 500)
    forged = _fee(paid, stripe_id("fee"), [ours + 1], account="acct_someone_else")
    receipt = await deliver(client, event("application_fee.refunded", forged))
    assert receipt["status"] == "mismatched"
    assert await _adjustments(session) == []
