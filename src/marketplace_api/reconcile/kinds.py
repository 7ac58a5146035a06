"""How reconcile works through one kind of row: select, ask Stripe, apply, mark checked.

A kind selects at most `limit` of its rows that are not settled yet, oldest-checked first (the
`reconcile_checks` cursor), asks Stripe for each row's object (`fetch`, outside any transaction)
and applies what Stripe says in one short transaction per row, which also marks the row checked.
What Stripe says goes to the webhook handler of that object's event type (`apply_as_event`): the
same state machines and ledger writes as a delivered event, observed now.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.errors import ProblemError
from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.integrations.stripe.objects import StripeModel
from marketplace_api.reconcile.checks import ReconcileCheck, last_checked, oldest_checked_first
from marketplace_api.reconcile.checks import mark_checked as _mark_checked
from marketplace_api.webhooks.dispatch import EventContext, RetryLater, load_handlers


@dataclass
class Tally:
    checked: int = 0
    changed: list[str] = field(default_factory=list)  # "<id>: <from> -> <to>"


@dataclass(frozen=True, slots=True)
class Pass:
    """What every kind of one reconcile run shares; `errors` collects what went wrong."""

    sessionmaker: async_sessionmaker[AsyncSession]
    gateway: StripeGateway
    errors: list[str]
    now: datetime
    limit: int

    def failed(self, what: str, exc: ProblemError) -> None:
        self.errors.append(f"{what}: {exc.code}: {exc.detail or exc.title}")


@dataclass(frozen=True, slots=True)
class Update:
    """What Stripe said, as the event type whose handler applies it."""

    event_type: str
    object: StripeModel
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Row:
    id: uuid.UUID
    status: str
    values: tuple[Any, ...]  # what the fetch needs (Stripe ids, account)


Fetch = Callable[[Row], Awaitable[list[Update]]]
Apply = Callable[[AsyncSession, Row, Update, datetime], Awaitable[None]]


class _Tracked(Protocol):
    """A model with a reconcile kind: its rows have an id and a status column."""

    id: Any
    status: Any


async def apply_as_event(
    session: AsyncSession, update: Update, now: datetime, *, label: str = "reconcile"
) -> None:
    """Run the webhook handler of `update.event_type` on Stripe's object, observed `now`."""
    handler = load_handlers()[update.event_type]
    context = EventContext(
        id=f"{label}:{update.object.id}",
        type=update.event_type,
        account=update.account,
        created=now,
        livemode=update.object.livemode,
        # The handler reads the object as a webhook delivers it: Stripe's JSON.
        object=update.object.model_dump(),
    )
    await handler(session, context)


async def _apply_event(session: AsyncSession, row: Row, update: Update, now: datetime) -> None:
    await apply_as_event(session, update, now)


async def reconcile_kind(
    run: Pass,
    tally: Tally,
    *,
    kind: str,
    model: type[_Tracked],
    query: Select[*tuple[Any, ...]],
    fetch: Fetch,
    apply: Apply = _apply_event,
    order_by: Sequence[Any] = (),
) -> None:
    """Select the rows of `query` (`model.id`, `model.status`, then what `fetch` needs) checked
    longest ago, then fetch, apply and mark checked each row, each in its own transaction."""
    async with run.sessionmaker() as session:
        result = (
            await session.execute(
                query.outerjoin(ReconcileCheck, last_checked(kind, model.id))
                .order_by(oldest_checked_first(), *order_by, model.id)
                .limit(run.limit)
            )
        ).all()
        await session.commit()
    for r in result:
        row = Row(r[0], _text(r[1]), tuple(r[2:]))
        tally.checked += 1
        updates: list[Update] = []
        try:
            updates = await fetch(row)
        except ProblemError as exc:
            run.failed(f"{kind} {row.id}", exc)
        async with run.sessionmaker() as session:
            try:
                for update in updates:
                    await apply(session, row, update, run.now)
            except RetryLater as exc:
                await session.rollback()
                run.errors.append(f"{kind} {row.id}: {exc}")
            await _mark_checked(session, kind, row.id, run.now)
            after = await session.scalar(select(model.status).where(model.id == row.id))
            await session.commit()
        if after is not None and _text(after) != row.status:
            tally.changed.append(f"{row.id}: {row.status} -> {_text(after)}")


def _text(status: Any) -> str:
    return str(status.value if hasattr(status, "value") else status)


class _WithMetadata(Protocol):
    @property
    def metadata(self) -> dict[str, str]: ...


_O = TypeVar("_O", bound=_WithMetadata)


def ours(objects: Sequence[_O], key: str, our_id: uuid.UUID) -> list[_O]:
    """The objects carrying our id under `key` in their metadata."""
    return [o for o in objects if o.metadata.get(key) == str(our_id)]
