"""Templates: every kind renders (plain text and HTML); amounts per currency and locale."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace_api.notifications.formatting import format_money, major_units
from marketplace_api.notifications.kinds import KINDS, Kind
from marketplace_api.notifications.render import render

ITEMS = [{"title": "Blue mug", "quantity": 2, "unit_amount": 1250, "amount": 2500}]
SAMPLES: dict[Kind, dict[str, Any]] = {
    Kind.order_paid: {
        "buyer_name": "Bea Buyer",
        "payment_id": "p1",
        "currency": "usd",
        "total": 2500,
        "paid_at": "2026-11-22T03:00:00+00:00",
        "orders": [{"order_id": "o1", "vendor_name": "Acme", "amount": 2500, "items": ITEMS}],
    },
    Kind.order_shipped: {
        "buyer_name": "Bea",
        "order_id": "o1",
        "vendor_name": "Acme",
        "carrier": "UPS",
        "tracking_number": "1Z999",
        "tracking_url": "https://ups.example/1Z999",
        "items": ITEMS,
    },
    Kind.refund_issued: {
        "buyer_name": "Bea",
        "order_id": "o1",
        "vendor_name": "Acme",
        "amount": 1000,
        "currency": "usd",
        "amount_refunded": 1000,
        "order_amount": 2500,
        "reason": "requested by customer",
    },
    Kind.vendor_new_order: {
        "vendor_name": "Acme",
        "buyer_name": "Bea",
        "order_id": "o1",
        "currency": "usd",
        "amount": 2500,
        "platform_fee": 250,
        "vendor_amount": 2250,
        "items": ITEMS,
    },
    Kind.dispute_opened: {
        "vendor_name": "Acme",
        "dispute_id": "d1",
        "amount": 2500,
        "currency": "usd",
        "reason": "fraudulent",
        "evidence_due_by": "2026-12-01T23:59:59+00:00",
        "order_ids": ["o1"],
    },
    Kind.transfer_released: {
        "vendor_name": "Acme",
        "order_id": "o1",
        "transfer_id": "t1",
        "amount": 2250,
        "currency": "usd",
    },
    Kind.payout_failed: {
        "vendor_name": "Acme",
        "payout_id": "po_1",
        "amount": 9900,
        "currency": "usd",
        "failure_code": "account_closed",
        "failure_message": "The bank account has been closed.",
    },
    Kind.requirements_due: {
        "vendor_name": "Acme",
        "currently_due": ["external_account"],
        "past_due": [],
        "deadline": "2026-12-01T00:00:00+00:00",
    },
    Kind.transfer_failed: {
        "order_id": "o1",
        "transfer_id": "t1",
        "vendor_name": "Acme",
        "amount": 2250,
        "currency": "usd",
        "attempts": 5,
        "error": "insufficient_funds",
    },
    Kind.webhook_event_failed: {
        "event_id": "evt_1",
        "event_type": "payment_intent.succeeded",
        "attempts": 10,
        "last_error": "RuntimeError: boom",
    },
    Kind.duplicate_payment_refunded: {
        "buyer_name": "Ann",
        "payment_id": "p1",
        "amount": 2500,
        "currency": "usd",
    },
    Kind.webhook_event_mismatched: {
        "event_id": "evt_1",
        "event_type": "payment_intent.succeeded",
        "last_error": "mismatch: payment: the event's amount is 50, we recorded 10000",
    },
    Kind.operator_alert: {
        "title": "Duplicate payment refunded",
        "message": "A second PaymentIntent succeeded for one payment; it was refunded.",
        "details": {"payment_id": "p1", "payment_intent": "pi_2"},
    },
}


def test_every_kind_has_a_sample() -> None:
    assert set(SAMPLES) == set(KINDS) == set(Kind)


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_renders_text_and_html(kind: Kind) -> None:
    email = render(kind, SAMPLES[kind], locale="en_US", frontend_url="https://shop.example/")
    assert email.subject
    assert "\n" not in email.subject
    assert email.text.strip()
    assert email.html.lstrip().startswith("<!DOCTYPE html>")
    assert "{{" not in email.text + email.html


def test_receipt_lists_items_amounts_and_vendor() -> None:
    email = render(
        Kind.order_paid, SAMPLES[Kind.order_paid], locale="en_US", frontend_url="https://s.ex"
    )
    assert email.subject == "Your receipt: $25.00"
    assert "2 x Blue mug ($12.50 each): $25.00" in email.text
    assert "Sold by Acme" in email.text
    assert "Total paid: $25.00" in email.text
    assert "https://s.ex/orders" in email.text
    assert "Sold by Acme" in email.html


def test_dispute_email_states_the_evidence_deadline() -> None:
    email = render(
        Kind.dispute_opened, SAMPLES[Kind.dispute_opened], locale="en_US", frontend_url="x"
    )
    assert "Evidence is due by: Dec 1, 2026, 11:59:59\u202fPM UTC" in email.text


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (1999, "usd", "en_US", "$19.99"),
        (1999, "eur", "de_DE", "19,99\xa0€"),
        (123456789, "eur", "fr_FR", "1\u202f234\u202f567,89\xa0€"),
        (500, "jpy", "ja_JP", "￥500"),
        (500, "jpy", "en_US", "¥500"),
        (1250, "kwd", "en_US", "KWD1.250"),
        (5, "usd", "en_US", "$0.05"),
        (100, "gbp", "en_GB", "£1.00"),
    ],
)
def test_amounts_are_formatted_per_currency_exponent_and_locale(
    amount: int, currency: str, locale: str, expected: str
) -> None:
    assert format_money(amount, currency, locale) == expected


def test_amounts_are_exact_and_never_floats() -> None:
    assert str(major_units(1999, "usd")) == "19.99"
    assert str(major_units(1250, "kwd")) == "1.250"
    assert str(major_units(500, "jpy")) == "500"
    with pytest.raises(TypeError):
        major_units(19.99, "usd")  # type: ignore[arg-type]


def test_locale_changes_the_email_amounts() -> None:
    context = {**SAMPLES[Kind.transfer_released], "currency": "eur"}
    email = render(Kind.transfer_released, context, locale="de_DE", frontend_url="x")
    assert email.subject == "22,50\xa0€ is on its way to your account"


def test_html_escapes_values_and_text_keeps_them() -> None:
    context = {**SAMPLES[Kind.order_shipped], "vendor_name": "<script>alert(1)</script>"}
    email = render(Kind.order_shipped, context, locale="en_US", frontend_url="x")
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert "<script>alert(1)</script>" in email.text


def test_a_missing_value_is_an_error_not_an_empty_string() -> None:
    context = dict(SAMPLES[Kind.transfer_released])
    del context["amount"]
    with pytest.raises(Exception, match="amount"):
        render(Kind.transfer_released, context, locale="en_US", frontend_url="x")
