"""Binding a Stripe object to the row we recorded, before any state moves.

Metadata (`payment_id`, `refund_id`, `transfer_id`, `vendor_id`) only *finds* a candidate row:
anybody who can make Stripe sign an event (a second PaymentIntent, an object copied by hand in the
dashboard, a connected account's own objects) controls metadata. Before a handler changes
anything, the object's Stripe id must be one we stored on that row (or, where our create answer
was lost and we stored none yet, nothing else may be stored there), and its amount, currency and
connected account must be the ones we recorded. `verify` is that one check, shared by every
handler; a disagreement raises `Mismatch`, which the pipeline turns into an event stored
`mismatched`, an operator alert and a 2xx with no money state changed.

`is_older` is the one "is this view older than what we applied" comparison: Stripe's event
`created` has whole seconds, our own retrievals have microseconds, so both are compared at whole
seconds and an equal second is *not* older (the later-arriving view is applied).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from marketplace_api.integrations.stripe.objects import StripeModel, metadata_value


class Mismatch(Exception):
    """The event names one of our rows but disagrees with what we recorded for it."""

    def __init__(self, what: str, field: str, ours: object, theirs: object) -> None:
        self.what, self.field, self.ours, self.theirs = what, field, ours, theirs
        super().__init__(f"{what}: the event's {field} is {theirs!r}, we recorded {ours!r}")


class _Unchecked:
    """No connected account to compare (our own retrieval, not an event)."""

    def __repr__(self) -> str:
        return "UNCHECKED"


UNCHECKED: Final = _Unchecked()


@dataclass(frozen=True, slots=True)
class Source:
    """Where a Stripe object came from: `account` is the event's `account` (None for platform
    events). Our own retrievals pass no Source: they were asked for by the id we stored."""

    account: str | None


def account_of(source: Source | None) -> str | _Unchecked | None:
    return UNCHECKED if source is None else source.account


def _reference(obj: StripeModel, name: str) -> str | None:
    """A Stripe id the object carries (expandable references are parsed to their id). A name
    the model does not declare is our bug, not an absent reference: it must not pass silently."""
    if name not in type(obj).model_fields:
        raise AttributeError(f"{type(obj).__name__} has no field {name!r}")
    value = getattr(obj, name)
    return value if isinstance(value, str) and value else None


def our_id(raw: str | None) -> uuid.UUID | None:
    """One of our row ids as a Stripe object carries it (None when absent or not an id). It only
    finds a candidate row: `verify` binds the object to it."""
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


def metadata_id(metadata: Mapping[str, str], key: str) -> uuid.UUID | None:
    """`our_id` of the metadata `key` of a Stripe object."""
    return our_id(metadata_value(metadata, key))


def verify(
    what: str,
    obj: StripeModel,
    *,
    ids: Iterable[str | None] = (),
    amount: int | None = None,
    amount_field: str = "amount",
    currency: str | None = None,
    account: str | _Unchecked | None = UNCHECKED,
    expected_account: str | None = None,
    references: Mapping[str, str | None] | None = None,
) -> None:
    """Raise `Mismatch` unless `obj` is the object we recorded.

    - `ids`: the Stripe ids we stored for this row; when any is stored, `obj.id` must be one
      of them (when none is, the create answer was lost: the other fields must still agree);
    - `amount` / `currency`: what we recorded (`amount_field` names the object's field);
    - `account` (the event's `account`, or `UNCHECKED`) must equal `expected_account`: the
      vendor's connected account for objects living there, None for platform objects;
    - `references`: other Stripe ids the object carries (`charge`, `payment_intent`, …) that must
      equal the stored ones where both are known.
    """
    stored = [i for i in ids if i]
    object_id = obj.id or None
    if stored and object_id not in stored:
        raise Mismatch(what, "id", stored[0], object_id)
    if amount is not None:
        theirs = getattr(obj, amount_field, None)
        if not isinstance(theirs, int) or isinstance(theirs, bool) or theirs != amount:
            raise Mismatch(what, amount_field, amount, theirs)
    if currency is not None:
        theirs_currency = getattr(obj, "currency", None)
        if not isinstance(theirs_currency, str) or theirs_currency.lower() != currency.lower():
            raise Mismatch(what, "currency", currency, theirs_currency)
    if not isinstance(account, _Unchecked) and account != expected_account:
        raise Mismatch(what, "account", expected_account, account)
    for field, ours in (references or {}).items():
        theirs_ref = _reference(obj, field)
        if ours and theirs_ref and theirs_ref != ours:
            raise Mismatch(what, field, ours, theirs_ref)


def is_older(observed_at: datetime, stored: datetime | None) -> bool:
    """True when a view taken at `observed_at` is older than the one applied at `stored`,
    compared at whole seconds (an equal second is not older: it is applied)."""
    if stored is None:
        return False
    return observed_at.replace(microsecond=0) < stored.replace(microsecond=0)
