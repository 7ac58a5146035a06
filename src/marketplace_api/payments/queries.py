"""Reads of the payments table: the buyer's payment, its status for order views, and the row as
committed now (money movements check it after taking their lock)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType
from marketplace_api.orders.queries import orders_of_payment
from marketplace_api.payments.exceptions import PaymentNotFound
from marketplace_api.payments.models import PAYABLE_STATUSES, Payment, PaymentStatus
from marketplace_api.payments.schemas import PaymentRead
from marketplace_api.reads import read_from


def charge_account(charge_type: ChargeType, stripe_account_id: str | None) -> str | None:
    """The connected account a charge's Stripe objects live on (refunds, disputes, the
    PaymentIntent): the vendor's for direct charges, None (the platform) for the others."""
    return stripe_account_id if charge_type is ChargeType.direct else None


def payment_account(payment: Payment) -> str | None:
    """The connected account a payment's Stripe objects live on (None: the platform)."""
    return charge_account(payment.charge_type, payment.stripe_account_id)


async def fresh_payment(session: AsyncSession, payment_id: uuid.UUID) -> Payment:
    result = await session.execute(
        select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    )
    return result.scalar_one()


async def get_buyer_payment(
    session: AsyncSession, buyer_id: uuid.UUID, payment_id: uuid.UUID
) -> Payment:
    """The buyer's payment; another buyer's payment is not found (404, never 403)."""
    payment = (
        await session.execute(
            select(Payment)
            .where(Payment.id == payment_id, Payment.buyer_id == buyer_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if payment is None:
        raise PaymentNotFound()
    return payment


async def payment_statuses(
    session: AsyncSession, payment_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, PaymentStatus]:
    rows = await session.execute(
        select(Payment.id, Payment.status).where(Payment.id.in_(set(payment_ids)))
    )
    return dict(rows.all())


async def payment_read(session: AsyncSession, payment: Payment) -> PaymentRead:
    order_ids = [o.id for o in await orders_of_payment(session, payment.id)]
    return read_from(
        PaymentRead,
        payment,
        client_secret=payment.client_secret if payment.status in PAYABLE_STATUSES else None,
        stripe_account=payment.stripe_account_id,
        order_ids=order_ids,
        expires_at=payment.reservation_expires_at,
    )
