"""Every kind of notification: who receives it and its subject line (a Jinja2 template).

The bodies are `templates/<kind>.txt` (plain text) and `templates/<kind>.html`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Audience(enum.StrEnum):
    buyer = "buyer"
    vendor = "vendor"
    admin = "admin"


class Kind(enum.StrEnum):
    order_paid = "order_paid"  # buyer: receipt
    order_shipped = "order_shipped"  # buyer
    refund_issued = "refund_issued"  # buyer
    duplicate_payment_refunded = "duplicate_payment_refunded"  # buyer: paid twice, one refunded
    vendor_new_order = "vendor_new_order"  # vendor: a new paid order
    dispute_opened = "dispute_opened"  # vendor: with the evidence deadline
    transfer_released = "transfer_released"  # vendor
    payout_failed = "payout_failed"  # vendor
    requirements_due = "requirements_due"  # vendor: onboarding requirements
    transfer_failed = "transfer_failed"  # admin
    webhook_event_failed = "webhook_event_failed"  # admin
    webhook_event_mismatched = "webhook_event_mismatched"  # admin: event disagrees with our row
    operator_alert = "operator_alert"  # admin: money Stripe moved that needs a look


@dataclass(frozen=True, slots=True)
class KindInfo:
    audience: Audience
    subject: str  # a Jinja2 template over the notification's context


KINDS: dict[Kind, KindInfo] = {
    Kind.order_paid: KindInfo(Audience.buyer, "Your receipt: {{ money(total, currency) }}"),
    Kind.order_shipped: KindInfo(Audience.buyer, "Your order from {{ vendor_name }} has shipped"),
    Kind.refund_issued: KindInfo(
        Audience.buyer, "Refund of {{ money(amount, currency) }} from {{ vendor_name }}"
    ),
    Kind.duplicate_payment_refunded: KindInfo(
        Audience.buyer, "You paid twice: {{ money(amount, currency) }} was refunded"
    ),
    Kind.vendor_new_order: KindInfo(
        Audience.vendor, "New paid order: {{ money(amount, currency) }}"
    ),
    Kind.dispute_opened: KindInfo(
        Audience.vendor, "A payment was disputed: {{ money(amount, currency) }}"
    ),
    Kind.transfer_released: KindInfo(
        Audience.vendor, "{{ money(amount, currency) }} is on its way to your account"
    ),
    Kind.payout_failed: KindInfo(
        Audience.vendor, "Your payout of {{ money(amount, currency) }} failed"
    ),
    Kind.requirements_due: KindInfo(
        Audience.vendor, "Stripe needs more information to keep your account active"
    ),
    Kind.transfer_failed: KindInfo(
        Audience.admin, "[marketplace] Transfer failed for order {{ order_id }}"
    ),
    Kind.webhook_event_failed: KindInfo(
        Audience.admin, "[marketplace] Stripe event {{ event_id }} failed ({{ event_type }})"
    ),
    Kind.webhook_event_mismatched: KindInfo(
        Audience.admin,
        "[marketplace] Stripe event {{ event_id }} does not match our records ({{ event_type }})",
    ),
    Kind.operator_alert: KindInfo(Audience.admin, "[marketplace] {{ title }}"),
}
