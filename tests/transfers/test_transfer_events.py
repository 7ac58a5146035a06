"""Transfer and payout webhooks: a lost create answer is recovered from `transfer.created`;
connected accounts' payouts land on the vendor's statement once."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.transfers.models import ReleaseTrigger, Transfer, TransferStatus
from tests.fixtures.money import deliver, make_paid
from tests.fixtures.stripe import event, stripe_id


async def test_transfer_created_event_records_a_transfer_whose_answer_was_lost(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    paid = await make_paid(session)
    transfer = Transfer(
        order_id=paid.order.id,
        payment_id=paid.payment.id,
        vendor_id=paid.vendor.id,
        amount=1800,
        currency="usd",
        destination=str(paid.vendor.stripe_account_id),
        trigger=ReleaseTrigger.admin,
    )
    session.add(transfer)
    await session.commit()
    obj = {
        "id": stripe_id("tr"),
        "object": "transfer",
        "amount": 1800,
        "currency": "usd",
        "metadata": {"transfer_id": str(transfer.id), "order_id": str(paid.order.id)},
        "reversals": {"data": []},
    }
    await deliver(client, event("transfer.created", obj))
    await deliver(client, event("transfer.updated", obj))
    await session.refresh(transfer)
    assert (transfer.status, transfer.stripe_transfer_id) == (TransferStatus.paid, obj["id"])
    rows = (
        await session.execute(
            select(MoneyMovement.amount).where(MoneyMovement.kind == MovementKind.transfer)
        )
    ).all()
    assert rows == [(1800,)]
    unknown = obj | {"metadata": {"transfer_id": str(uuid.uuid4())}}
    assert (await deliver(client, event("transfer.created", unknown)))["status"] == "pending"


async def test_payouts_of_connected_accounts_are_recorded_on_the_vendor_once(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    paid = await make_paid(session)
    account = str(paid.vendor.stripe_account_id)
    payout = {"id": stripe_id("po"), "object": "payout", "amount": 1500, "currency": "usd"}
    paid_event = event("payout.paid", payout, account=account)
    await deliver(client, paid_event, connect=True)
    await deliver(client, event("payout.paid", payout, account=account), connect=True)
    await deliver(
        client,
        event("payout.failed", payout | {"failure_code": "account_closed"}, account=account),
        connect=True,
    )
    rows = (
        await session.execute(
            select(MoneyMovement.kind, MoneyMovement.amount, MoneyMovement.vendor_id)
            .where(MoneyMovement.stripe_id == payout["id"])
            .order_by(MoneyMovement.seq)
        )
    ).all()
    assert rows == [
        (MovementKind.payout, -1500, paid.vendor.id),
        (MovementKind.payout_failed, 1500, paid.vendor.id),
    ]
