"""The typed Stripe objects read every value Stripe's own SDK says a field may hold.

A field the SDK types `Optional` (Stripe sends `null`) must parse when it is null: a model stricter
than Stripe would set a real event aside as `mismatched`, or make a create answer unreadable and
its row retried for ever.
"""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from pydantic import BaseModel

from marketplace_api.integrations.stripe import objects

# Our model -> the SDK class it reads, with a minimal valid object of that kind.
MODELS: list[tuple[type[BaseModel], type[Any], dict[str, Any]]] = [
    (
        objects.PaymentIntent,
        stripe.PaymentIntent,
        {"id": "pi_1", "status": "succeeded", "amount": 100, "currency": "usd"},
    ),
    (objects.Charge, stripe.Charge, {"id": "ch_1", "amount": 100, "currency": "usd"}),
    (objects.Refund, stripe.Refund, {"id": "re_1", "amount": 100, "currency": "usd"}),
    (objects.Transfer, stripe.Transfer, {"id": "tr_1", "amount": 100, "currency": "usd"}),
    (
        objects.TransferReversal,
        stripe.TransferReversal,
        {"id": "trr_1", "amount": 100, "currency": "usd"},
    ),
    (
        objects.Dispute,
        stripe.Dispute,
        {"id": "dp_1", "amount": 100, "currency": "usd", "status": "lost"},
    ),
    (objects.Payout, stripe.Payout, {"id": "po_1", "amount": 100, "currency": "usd"}),
    (objects.CheckoutSession, stripe.checkout.Session, {"id": "cs_1"}),
    (objects.Account, stripe.Account, {"id": "acct_1"}),
    (objects.AccountRequirements, stripe.Account.Requirements, {}),
    (objects.ApplicationFee, stripe.ApplicationFee, {"id": "fee_1"}),
]


def _sdk_fields(sdk: type[Any]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for klass in reversed(sdk.__mro__):
        fields.update({k: str(v) for k, v in getattr(klass, "__annotations__", {}).items()})
    return fields


@pytest.mark.parametrize(
    ("model", "sdk", "minimal"), MODELS, ids=lambda v: getattr(v, "__name__", "")
)
def test_every_field_stripe_may_send_as_null_parses_as_null(
    model: type[BaseModel], sdk: type[Any], minimal: dict[str, Any]
) -> None:
    nullable = [
        name
        for name, annotation in _sdk_fields(sdk).items()
        if name in model.model_fields and "Optional" in annotation
    ]
    for name in nullable:
        model.model_validate({**minimal, name: None})  # raises if we are stricter than Stripe


def test_account_reads_stripe_nulls_and_expanded_capabilities_like_before() -> None:
    account = objects.parse_object(
        objects.Account,
        {
            "id": "acct_1",
            "charges_enabled": None,
            "payouts_enabled": True,
            "details_submitted": None,
            "requirements": {"currently_due": None, "past_due": ["external_account"]},
            "capabilities": {
                "transfers": {"status": "active"},
                "card_payments": "pending",
                "x": {},
            },
        },
    )
    assert (account.charges_enabled, account.payouts_enabled, account.details_submitted) == (
        False,
        True,
        False,
    )
    assert account.requirements.currently_due == []
    assert account.requirements.past_due == ["external_account"]
    assert account.capabilities == {"transfers": "active", "card_payments": "pending"}


def test_a_mistyped_amount_is_still_refused() -> None:
    with pytest.raises(objects.StripeObjectInvalid):
        objects.parse_object(objects.Transfer, {"id": "tr_1", "amount": "100", "currency": "usd"})
