"""The dispatch table from Stripe event type to one small handler.

Domain packages register handlers with `@handles("account.updated", ...)` in their own `events.py`
module; `HANDLER_MODULES` lists those modules so the table is complete once `load_handlers()` ran.

A handler runs inside the webhook pipeline's transaction: it reads and changes rows through the
domain's state machine, never commits or rolls back, never calls Stripe, and does not change
`ctx.object` (the stored event's payload). It reads the object through `ctx.parse(Model)`, once:
an object whose fields do not have Stripe's types raises `StripeObjectInvalid`, and the event is
set aside like one that disagrees with our row (retrying cannot fix it). A database error it
expects must be caught around a savepoint (`session.begin_nested()`), since an uncaught one aborts
the transaction (the pipeline then keeps the event pending, with the error, rather than losing
it). When the row an event targets does not exist yet (the event outran our commit), it raises
`RetryLater`: the event stays pending and is applied again with backoff.
"""

from __future__ import annotations

import builtins
import functools
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.integrations.stripe.objects import StripeModel, parse_object

_M = TypeVar("_M", bound=StripeModel)


@dataclass(frozen=True, slots=True)
class EventContext:
    id: str
    type: str
    account: str | None  # set for events of connected accounts (Connect webhooks)
    created: datetime  # Stripe's event time: orders events about one object
    livemode: bool
    object: dict[str, Any]  # data.object, as JSON
    previous_attributes: dict[str, Any] | None = None

    def parse(self, model: builtins.type[_M]) -> _M:
        """`data.object` as `model` (`StripeObjectInvalid` when its fields have other types)."""
        return parse_object(model, self.object)


class RetryLater(Exception):
    """The event cannot be applied yet (its target row is not committed); try again later."""


EventHandler = Callable[[AsyncSession, EventContext], Awaitable[None]]

HANDLERS: dict[str, EventHandler] = {}

# Modules whose import registers handlers. Each domain adds its own `events` module here.
HANDLER_MODULES: tuple[str, ...] = (
    "marketplace_api.vendors.events",
    "marketplace_api.payments.events",
    "marketplace_api.refunds.events",
    "marketplace_api.disputes.events",
    "marketplace_api.transfers.events",
)


def handles(*event_types: str) -> Callable[[EventHandler], EventHandler]:
    def register(handler: EventHandler) -> EventHandler:
        for event_type in event_types:
            if event_type in HANDLERS and HANDLERS[event_type] is not handler:
                raise RuntimeError(f"two handlers for {event_type}")
            HANDLERS[event_type] = handler
        return handler

    return register


def load_handlers() -> dict[str, EventHandler]:
    _import_handler_modules()
    return HANDLERS


@functools.cache
def _import_handler_modules() -> None:
    """Once per process: every delivery asks for the handlers."""
    for module in HANDLER_MODULES:
        importlib.import_module(module)
