"""Reads of the ledger: a payment's full history, a vendor's statement, the platform summary."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.disputes.models import Dispute
from marketplace_api.disputes.schemas import DisputeRead
from marketplace_api.errors import UnprocessableEntity
from marketplace_api.ledger import service as ledger
from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.orders.models import Order
from marketplace_api.pagination import decode_cursor, encode_cursor
from marketplace_api.payments.models import Payment
from marketplace_api.reads import read_from
from marketplace_api.refunds.exceptions import PaymentNotFound
from marketplace_api.refunds.models import Refund
from marketplace_api.refunds.schemas import RefundRead
from marketplace_api.reports.schemas import (
    BalanceRead,
    CurrencySummary,
    MovementPage,
    MovementRead,
    PaymentHistoryRead,
    PaymentOrderRead,
    SummaryRead,
)
from marketplace_api.transfers.models import Transfer, TransferReversal
from marketplace_api.transfers.schemas import TransferRead, TransferReversalRead
from marketplace_api.vendors.queries import vendor_id_of

K = MovementKind


class InvalidPeriod(UnprocessableEntity):
    code = "invalid_period"
    title = "`from` must be before `to`"


async def _all(session: AsyncSession, query: Any) -> list[Any]:
    return list((await session.execute(query)).scalars().all())


async def payment_history(session: AsyncSession, payment_id: uuid.UUID) -> PaymentHistoryRead:
    payment = await session.get(Payment, payment_id, populate_existing=True)
    if payment is None:
        raise PaymentNotFound()
    orders = await _all(
        session, select(Order).where(Order.payment_id == payment.id).order_by(Order.id)
    )
    transfer_rows = await _all(
        session,
        select(Transfer).where(Transfer.payment_id == payment.id).order_by(Transfer.created_at),
    )
    reversals = await _all(
        session,
        select(TransferReversal)
        .where(TransferReversal.transfer_id.in_([t.id for t in transfer_rows]))
        .order_by(TransferReversal.created_at),
    )
    refunds = await _all(
        session, select(Refund).where(Refund.payment_id == payment.id).order_by(Refund.created_at)
    )
    disputes = await _all(
        session,
        select(Dispute).where(Dispute.payment_id == payment.id).order_by(Dispute.created_at),
    )
    balance = await ledger.payment_balance(session, payment)
    return read_from(
        PaymentHistoryRead,
        payment,
        orders=[PaymentOrderRead.model_validate(o) for o in orders],
        transfers=[TransferRead.model_validate(t) for t in transfer_rows],
        reversals=[TransferReversalRead.model_validate(r) for r in reversals],
        refunds=[RefundRead.model_validate(r) for r in refunds],
        disputes=[DisputeRead.model_validate(d) for d in disputes],
        movements=[
            MovementRead.model_validate(m)
            for m in await ledger.payment_movements(session, payment.id)
        ],
        balance=BalanceRead.model_validate(balance, from_attributes=True),
    )


async def vendor_statement(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    kind: MovementKind | None,
    limit: int,
    cursor: str | None,
) -> MovementPage:
    """The vendor's movements, newest first (keyset on `(occurred_at, id)`)."""
    after = decode_cursor(cursor) if cursor else None  # refused even with nothing to page
    vendor_id = await vendor_id_of(session, user_id)
    if vendor_id is None:
        return MovementPage(items=[], next_cursor=None)
    query = select(MoneyMovement).where(MoneyMovement.vendor_id == vendor_id)
    if kind is not None:
        query = query.where(MoneyMovement.kind == kind)
    if after is not None:
        at, last_id = after
        query = query.where(
            tuple_(MoneyMovement.occurred_at, MoneyMovement.id) < tuple_(at, last_id)
        )
    rows = await _all(
        session,
        query.order_by(MoneyMovement.occurred_at.desc(), MoneyMovement.id.desc()).limit(limit + 1),
    )
    page = rows[:limit]
    return MovementPage(
        items=[MovementRead.model_validate(m) for m in page],
        next_cursor=encode_cursor(page[-1].occurred_at, page[-1].id)
        if len(rows) > limit and page
        else None,
    )


def _sum(*kinds: MovementKind) -> Any:
    return func.coalesce(func.sum(MoneyMovement.amount).filter(MoneyMovement.kind.in_(kinds)), 0)


async def summary(session: AsyncSession, *, start: datetime, end: datetime) -> SummaryRead:
    """Per currency, movements with `start <= occurred_at < end`; the held balance at `end`."""
    if start >= end:
        raise InvalidPeriod()
    flows = (
        await session.execute(
            select(
                MoneyMovement.currency,
                _sum(K.charge),
                _sum(K.platform_fee, K.refund_fee_share),
                _sum(K.refund),
                _sum(K.transfer, K.transfer_reversal),
                _sum(K.dispute_withdrawal, K.dispute_reinstatement),
                _sum(K.stripe_fee),
            )
            .where(MoneyMovement.occurred_at >= start, MoneyMovement.occurred_at < end)
            .group_by(MoneyMovement.currency)
        )
    ).all()
    held_rows = (
        await session.execute(
            select(
                MoneyMovement.currency,
                _sum(K.charge, K.refund)
                - _sum(K.transfer, K.transfer_reversal)
                - _sum(K.platform_fee, K.refund_fee_share),
            )
            .where(MoneyMovement.occurred_at < end)
            .group_by(MoneyMovement.currency)
        )
    ).all()
    held = {currency: int(value) for currency, value in held_rows}
    by_currency: dict[str, CurrencySummary] = {}
    for currency, gross, fees, refunds, transfers, disputes, stripe_fees in flows:
        by_currency[currency] = CurrencySummary(
            currency=currency,
            gross_volume=int(gross),
            platform_fees=int(fees),
            refunds=-int(refunds),
            transfers=int(transfers),
            disputes=-int(disputes),
            stripe_fees=-int(stripe_fees),
            held_balance=held.get(currency, 0),
        )
    for currency, value in held.items():
        if currency not in by_currency and value:
            by_currency[currency] = CurrencySummary(
                currency=currency,
                gross_volume=0,
                platform_fees=0,
                refunds=0,
                transfers=0,
                disputes=0,
                stripe_fees=0,
                held_balance=value,
            )
    return SummaryRead(
        period_from=start,
        period_to=end,
        currencies=[by_currency[c] for c in sorted(by_currency)],
    )
