"""What every notification needs: fresh rows, the admins' addresses, and sending it once per
recipient.

The domains' `notices` modules load what their email says and who it goes to; these hand each
email to `service.notify_many` with its dedupe key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import Result, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import Role, User
from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.service import Email, dedupe_key, notify_many

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


def display_name(user: User) -> str:
    return user.full_name or user.email


async def admin_emails(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(User.email)
        .where(User.role == Role.admin, User.is_active.is_(True))
        .order_by(User.email)
    )
    return list(rows.scalars())
