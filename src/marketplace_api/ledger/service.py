"""Writing and reading the money-movement ledger.

`record_many` (and `record`, for one) is the only writer: `INSERT … ON CONFLICT DO NOTHING` on
`(kind, stripe_id, order_id)`, so whatever records a movement twice (a replayed webhook, a retried
job, a second replica) records it once. Nothing here updates or deletes a row (and the database
refuses to).

The invariant, per payment (amounts signed as in `ledger.models`):

    charge + refund == (transfer + transfer_reversal) + (platform_fee + refund_fee_share) + held

- charge: what the buyer paid (Σ `charge`);
- refund (≤ 0): what went back to the buyer (Σ `refund`);
- transfers: what the vendors keep (Σ `transfer` + Σ `transfer_reversal`);
- platform fee: what the platform keeps (Σ `platform_fee` + Σ `refund_fee_share`);
- held: what the platform still holds for vendors — for separate charges, the vendor share of
  orders not transferred yet (vendor_amount minus the vendor share of their refunds); 0 once
  released; 0 for destination and direct charges (their vendor share settles at charge time).
  While a reversal of a refunded, already-transferred share is pending, held is negative: the
  amount the vendor still owes back.

`held` is computed here as the residual; the tests check it against the orders and transfers.
Dispute movements and Stripe's fee are outside the invariant (reported separately).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, Protocol, TypedDict, Unpack

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.ledger.models import MoneyMovement, MovementKind
from marketplace_api.tables import table_of

K = MovementKind


class Movement(TypedDict):
    """What a caller says of one movement (the links and details it leaves out are null)."""

    kind: MovementKind
    amount: int
    currency: str
    stripe_id: str
    occurred_at: datetime
    payment_id: NotRequired[uuid.UUID | None]
    order_id: NotRequired[uuid.UUID | None]
    vendor_id: NotRequired[uuid.UUID | None]
    details: NotRequired[dict[str, Any] | None]


# Built once, on the ledger's table: a parameter list runs as one multi-row INSERT
# ("insertmanyvalues"), compiled once; rows with None in some columns share it.
_INSERT = (
    insert(table_of(MoneyMovement))
    .on_conflict_do_nothing(constraint="uq_money_movements_kind_stripe_id_order_id")
    .returning(table_of(MoneyMovement).c.id)
)


def movement(**fields: Unpack[Movement]) -> dict[str, Any]:
    """The row of one movement, for `record_many`: every row names every column, so the rows
    of one call share one statement."""
    links = {"payment_id": None, "order_id": None, "vendor_id": None, "details": None}
    return {"id": uuid.uuid4(), **links, **fields}


async def record_many(session: AsyncSession, movements: Sequence[dict[str, Any]]) -> int:
    """Record movements (rows from `movement`) in one statement, each unless it is already
    recorded; returns how many were newly inserted."""
    if not movements:
        return 0
    return len((await session.execute(_INSERT, list(movements))).all())


async def record(session: AsyncSession, **fields: Unpack[Movement]) -> bool:
    """Record one movement unless it is already recorded; True when newly inserted."""
    return await record_many(session, [movement(**fields)]) == 1


@dataclass(frozen=True, slots=True)
class PaymentBalance:
    currency: str
    charge: int
    refunds: int  # ≤ 0
    transfers: int
    platform_fee: int
    disputes: int
    stripe_fee: int

    @property
    def held(self) -> int:
        return self.charge + self.refunds - self.transfers - self.platform_fee


def _kind_sum(kinds: tuple[MovementKind, ...]) -> Any:
    return func.coalesce(func.sum(MoneyMovement.amount).filter(MoneyMovement.kind.in_(kinds)), 0)


_SUMS = (
    _kind_sum((K.charge,)),
    _kind_sum((K.refund,)),
    _kind_sum((K.transfer, K.transfer_reversal)),
    _kind_sum((K.platform_fee, K.refund_fee_share)),
    _kind_sum((K.dispute_withdrawal, K.dispute_reinstatement)),
    _kind_sum((K.stripe_fee,)),
)


class Charged(Protocol):
    """What the ledger reads of a payment (`payments.models.Payment` is one)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def currency(self) -> str: ...


async def payment_balance(session: AsyncSession, payment: Charged) -> PaymentBalance:
    row = (
        await session.execute(select(*_SUMS).where(MoneyMovement.payment_id == payment.id))
    ).one()
    return PaymentBalance(payment.currency, *(int(v) for v in row))


async def payment_movements(session: AsyncSession, payment_id: uuid.UUID) -> list[MoneyMovement]:
    result = await session.execute(
        select(MoneyMovement)
        .where(MoneyMovement.payment_id == payment_id)
        .order_by(MoneyMovement.occurred_at, MoneyMovement.seq)
    )
    return list(result.scalars().all())
