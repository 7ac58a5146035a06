"""What every notification needs: fresh rows, who receives it, and sending it once per recipient.

The functions in `notify` load what their email says; these load who it goes to and hand each
email to `service.notify_many` with its dedupe key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import Result, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import Role, User
from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.service import Email, dedupe_key, notify_many
from marketplace_api.orders.models import OrderItem
from marketplace_api.vendors.models import Vendor

_Ts = TypeVarTuple("_Ts")
_R = TypeVar("_R")


async def fresh(session: AsyncSession, statement: Select[*_Ts]) -> Result[*_Ts]:
    """Rows as committed in this transaction: pending changes flushed first, and objects already
    in the session refreshed (the caller may have changed them with a bulk UPDATE)."""
    await session.flush()
    return await session.execute(statement.execution_options(populate_existing=True))


async def fresh_row(session: AsyncSession, model: type[_R], row_id: Any) -> _R | None:
    """One row by primary key, as committed in this transaction (see `fresh`)."""
    await session.flush()
    return await session.get(model, row_id, populate_existing=True)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def emails_for(
    kind: Kind, source: str, recipients: Sequence[str], context: Mapping[str, Any]
) -> list[Email]:
    """One email per distinct recipient (empty addresses skipped), in order."""
    unique = dict.fromkeys(r for r in recipients if r)
    return [Email(kind, r, context, dedupe_key(source, r, kind)) for r in unique]


async def send(
    session: AsyncSession,
    kind: Kind,
    source: str,
    recipients: Sequence[str],
    context: Mapping[str, Any],
) -> int:
    return len(await notify_many(session, emails_for(kind, source, recipients, context)))


async def order_items(
    session: AsyncSession, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    rows = (
        await fresh(
            session,
            select(OrderItem)
            .where(OrderItem.order_id.in_(order_ids))
            .order_by(OrderItem.order_id, OrderItem.title, OrderItem.id),
        )
    ).scalars()
    items: dict[uuid.UUID, list[dict[str, Any]]] = {order_id: [] for order_id in order_ids}
    for item in rows:
        items[item.order_id].append(
            {
                "title": item.title,
                "quantity": item.quantity,
                "unit_amount": item.unit_amount,
                "amount": item.amount,
            }
        )
    return items


async def vendor_contacts(
    session: AsyncSession, vendor_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    """vendor id -> (display name, email of the vendor's user)."""
    rows = await session.execute(
        select(Vendor.id, Vendor.display_name, User.email)
        .join(User, User.id == Vendor.user_id)
        .where(Vendor.id.in_(vendor_ids))
    )
    return {vendor_id: (name, email) for vendor_id, name, email in rows.all()}


def display_name(user: User) -> str:
    return user.full_name or user.email


async def admin_emails(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(User.email)
        .where(User.role == Role.admin, User.is_active.is_(True))
        .order_by(User.email)
    )
    return list(rows.scalars())
