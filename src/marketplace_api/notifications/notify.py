"""One function per notification kind: load what the email needs and `notify()` each recipient.

Call them in the transaction that makes the state change (they never commit). Each builds its
dedupe key from a stable source, so calling it again for the same cause sends nothing new:

| function                     | recipients        | source of the dedupe key          |
|------------------------------|-------------------|-----------------------------------|
| `notify_order_paid`          | buyer + vendors   | `payment:<id>` / `order:<id>`     |
| `notify_order_shipped`       | buyer             | `order:<id>`                      |
| `notify_refund_issued`       | buyer             | `refund:<id>`                     |
| `notify_dispute_opened`      | vendors           | `dispute:<id>`                    |
| `notify_transfer_released`   | vendor            | `transfer:<id>`                   |
| `notify_payout_failed`       | vendor            | `payout:<po_…>`                   |
| `notify_requirements_due`    | vendor            | `vendor:<id>:requirements:<hash>` |
| `notify_transfer_failed`     | admins            | `transfer:<id>`                   |
| `notify_webhook_event_failed`| admins            | `stripe_event:<evt_…>`            |

Each returns how many notifications it created (0 for a repeat, or when the rows are missing).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import User
from marketplace_api.disputes.models import Dispute
from marketplace_api.fulfilment.models import Shipment
from marketplace_api.integrations.stripe.objects import Payout, parse_object
from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.recipients import (
    admin_emails,
    display_name,
    emails_for,
    fresh,
    fresh_row,
    iso,
    order_items,
    send,
    vendor_contacts,
)
from marketplace_api.notifications.service import Email, notify_many
from marketplace_api.orders.models import Order
from marketplace_api.payments.models import Payment
from marketplace_api.refunds.models import DuplicatePaymentRefund, Refund
from marketplace_api.transfers.models import Transfer
from marketplace_api.vendors.models import Vendor
from marketplace_api.webhooks.models import StripeEvent

# --- buyer -----------------------------------------------------------------------------------


async def notify_order_paid(session: AsyncSession, payment_id: uuid.UUID) -> int:
    """The buyer's receipt (every order of the payment: items, amounts, vendor) and a "new paid
    order" email to each vendor. Call when the payment has succeeded and its orders are paid."""
    payment = await fresh_row(session, Payment, payment_id)
    if payment is None:
        return 0
    orders = list(
        (
            await fresh(
                session, select(Order).where(Order.payment_id == payment_id).order_by(Order.id)
            )
        ).scalars()
    )
    return await notify_orders_paid(session, payment, orders)


async def notify_orders_paid(
    session: AsyncSession, payment: Payment, orders: Sequence[Order]
) -> int:
    """`notify_order_paid` for a payment and its orders (all of them, by id) the caller has
    just read in this transaction."""
    buyer = await fresh_row(session, User, payment.buyer_id)
    if not orders or buyer is None:
        return 0
    items = await order_items(session, [o.id for o in orders])
    vendors = await vendor_contacts(session, [o.vendor_id for o in orders])
    paid_at = payment.succeeded_at or max((o.paid_at or o.status_updated_at) for o in orders)
    receipt = {
        "buyer_name": display_name(buyer),
        "payment_id": str(payment.id),
        "currency": payment.currency,
        "total": sum(o.amount for o in orders),
        "paid_at": iso(paid_at),
        "orders": [
            {
                "order_id": str(o.id),
                "vendor_name": vendors.get(o.vendor_id, ("", ""))[0],
                "amount": o.amount,
                "items": items[o.id],
            }
            for o in orders
        ],
    }
    emails = emails_for(Kind.order_paid, f"payment:{payment.id}", [buyer.email], receipt)
    for order in orders:
        vendor_name, vendor_email = vendors.get(order.vendor_id, ("", ""))
        context = {
            "vendor_name": vendor_name,
            "buyer_name": display_name(buyer),
            "order_id": str(order.id),
            "currency": order.currency,
            "amount": order.amount,
            "platform_fee": order.platform_fee,
            "vendor_amount": order.vendor_amount,
            "items": items[order.id],
        }
        emails += emails_for(Kind.vendor_new_order, f"order:{order.id}", [vendor_email], context)
    return len(await notify_many(session, emails))


async def notify_order_shipped(session: AsyncSession, order_id: uuid.UUID) -> int:
    """The buyer's "your order has shipped", with the shipment's carrier and tracking."""
    order = await fresh_row(session, Order, order_id)
    if order is None:
        return 0
    buyer = await fresh_row(session, User, order.buyer_id)
    if buyer is None:
        return 0
    shipment = (
        await fresh(session, select(Shipment).where(Shipment.order_id == order_id))
    ).scalar_one_or_none()
    vendors = await vendor_contacts(session, [order.vendor_id])
    context = {
        "buyer_name": display_name(buyer),
        "order_id": str(order.id),
        "vendor_name": vendors.get(order.vendor_id, ("", ""))[0],
        "carrier": shipment.carrier if shipment else None,
        "tracking_number": shipment.tracking_number if shipment else None,
        "tracking_url": shipment.tracking_url if shipment else None,
        "items": (await order_items(session, [order.id]))[order.id],
    }
    return await send(session, Kind.order_shipped, f"order:{order.id}", [buyer.email], context)


async def notify_refund_issued(session: AsyncSession, refund_id: uuid.UUID) -> int:
    """The buyer's "refund issued": call when the refund row has succeeded (and the order's
    `amount_refunded` includes it)."""
    refund = await fresh_row(session, Refund, refund_id)
    if refund is None:
        return 0
    order = await fresh_row(session, Order, refund.order_id)
    if order is None:
        return 0
    buyer = await fresh_row(session, User, order.buyer_id)
    if buyer is None:
        return 0
    vendors = await vendor_contacts(session, [order.vendor_id])
    context = {
        "buyer_name": display_name(buyer),
        "order_id": str(order.id),
        "vendor_name": vendors.get(order.vendor_id, ("", ""))[0],
        "amount": refund.amount,
        "currency": refund.currency,
        "amount_refunded": max(order.amount_refunded, refund.amount),
        "order_amount": order.amount,
        "reason": refund.reason.value.replace("_", " ") if refund.reason else None,
    }
    return await send(session, Kind.refund_issued, f"refund:{refund.id}", [buyer.email], context)


async def notify_duplicate_payment_refunded(session: AsyncSession, duplicate_id: uuid.UUID) -> int:
    """The buyer's "you paid twice, one payment was refunded": call when the duplicate's refund
    has succeeded (one email per duplicate)."""
    row = (
        await fresh(
            session, select(DuplicatePaymentRefund).where(DuplicatePaymentRefund.id == duplicate_id)
        )
    ).scalar_one_or_none()
    if row is None:
        return 0
    payment = await session.get(Payment, row.payment_id)
    buyer = await fresh_row(session, User, payment.buyer_id) if payment is not None else None
    if buyer is None:
        return 0
    context = {
        "buyer_name": display_name(buyer),
        "payment_id": str(row.payment_id),
        "amount": row.amount,
        "currency": row.currency,
    }
    return await send(
        session,
        Kind.duplicate_payment_refunded,
        f"duplicate_payment:{row.stripe_payment_intent_id}",
        [buyer.email],
        context,
    )


# --- vendor ----------------------------------------------------------------------------------


async def notify_dispute_opened(session: AsyncSession, dispute_id: uuid.UUID) -> int:
    """Each vendor of the disputed payment, with the evidence deadline."""
    dispute = await fresh_row(session, Dispute, dispute_id)
    if dispute is None:
        return 0
    orders = list(
        (
            await fresh(
                session,
                select(Order).where(Order.payment_id == dispute.payment_id).order_by(Order.id),
            )
        ).scalars()
    )
    vendors = await vendor_contacts(session, [o.vendor_id for o in orders])
    emails: list[Email] = []
    for vendor_id, (vendor_name, vendor_email) in vendors.items():
        context = {
            "vendor_name": vendor_name,
            "dispute_id": str(dispute.id),
            "amount": dispute.amount,
            "currency": dispute.currency,
            "reason": dispute.reason.replace("_", " ") if dispute.reason else None,
            "evidence_due_by": iso(dispute.evidence_due_by),
            "order_ids": [str(o.id) for o in orders if o.vendor_id == vendor_id],
        }
        emails += emails_for(Kind.dispute_opened, f"dispute:{dispute.id}", [vendor_email], context)
    return len(await notify_many(session, emails))


async def notify_transfer_released(session: AsyncSession, transfer_id: uuid.UUID) -> int:
    """The vendor's "funds released": call when the transfer row is paid."""
    transfer = await fresh_row(session, Transfer, transfer_id)
    if transfer is None:
        return 0
    vendors = await vendor_contacts(session, [transfer.vendor_id])
    if transfer.vendor_id not in vendors:
        return 0
    vendor_name, vendor_email = vendors[transfer.vendor_id]
    context = {
        "vendor_name": vendor_name,
        "order_id": str(transfer.order_id),
        "transfer_id": str(transfer.id),
        "amount": transfer.amount,
        "currency": transfer.currency,
    }
    return await send(
        session, Kind.transfer_released, f"transfer:{transfer.id}", [vendor_email], context
    )


async def _vendor_by_account(session: AsyncSession, stripe_account_id: str) -> Vendor | None:
    return (
        await fresh(session, select(Vendor).where(Vendor.stripe_account_id == stripe_account_id))
    ).scalar_one_or_none()


async def notify_payout_failed(
    session: AsyncSession, stripe_account_id: str, payout: Payout | Mapping[str, Any]
) -> int:
    """The vendor whose connected account's payout failed (`payout`: the payout of a
    `payout.failed` Connect event, typed or as Stripe's JSON)."""
    if not isinstance(payout, Payout):
        payout = parse_object(Payout, payout)
    vendor = await _vendor_by_account(session, stripe_account_id)
    if vendor is None:
        return 0
    contacts = await vendor_contacts(session, [vendor.id])
    vendor_name, vendor_email = contacts[vendor.id]
    context = {
        "vendor_name": vendor_name,
        "payout_id": payout.id,
        "amount": payout.amount,
        "currency": payout.currency,
        "failure_code": payout.failure_code,
        "failure_message": payout.failure_message,
    }
    return await send(session, Kind.payout_failed, f"payout:{payout.id}", [vendor_email], context)


async def notify_requirements_due(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    *,
    deadline: int | None = None,
) -> int:
    """The vendor's "Stripe needs more information": what is currently (and past) due on the
    vendor row, and Stripe's `account.requirements.current_deadline` when given. Call after an
    account snapshot was applied. One email per distinct set of due requirements (an account
    updated ten times with the same requirements sends one); nothing when nothing is due."""
    vendor = await fresh_row(session, Vendor, vendor_id)
    if vendor is None:
        return 0
    currently_due = sorted(vendor.requirements_currently_due or [])
    past_due = sorted(vendor.requirements_past_due or [])
    if not currently_due and not past_due:
        return 0
    contacts = await vendor_contacts(session, [vendor_id])
    vendor_name, vendor_email = contacts[vendor_id]
    context = {
        "vendor_name": vendor_name,
        "currently_due": currently_due,
        "past_due": past_due,
        "deadline": None if deadline is None else datetime.fromtimestamp(deadline, UTC).isoformat(),
    }
    digest = hashlib.sha256("|".join([*currently_due, "#", *past_due]).encode()).hexdigest()
    source = f"vendor:{vendor_id}:requirements:{digest[:16]}"
    return await send(session, Kind.requirements_due, source, [vendor_email], context)


# --- admin -----------------------------------------------------------------------------------


async def notify_transfer_failed(session: AsyncSession, transfer_id: uuid.UUID) -> int:
    """Every active admin: a transfer to a vendor failed for good (one email per transfer)."""
    transfer = await fresh_row(session, Transfer, transfer_id)
    if transfer is None:
        return 0
    contacts = await vendor_contacts(session, [transfer.vendor_id])
    context = {
        "order_id": str(transfer.order_id),
        "transfer_id": str(transfer.id),
        "vendor_name": contacts.get(transfer.vendor_id, (str(transfer.vendor_id), ""))[0],
        "amount": transfer.amount,
        "currency": transfer.currency,
        "attempts": transfer.attempts,
        "error": transfer.last_error,
    }
    return await send(
        session,
        Kind.transfer_failed,
        f"transfer:{transfer.id}",
        await admin_emails(session),
        context,
    )


async def notify_webhook_event_failed(session: AsyncSession, event_id: str) -> int:
    """Every active admin: a stored Stripe event failed for good (one email per event). Call
    when the event is moved to `failed`."""
    return await _notify_event(session, event_id, Kind.webhook_event_failed, attempts=True)


async def notify_webhook_event_mismatched(session: AsyncSession, event_id: str) -> int:
    """Every active admin: a Stripe event disagreed with the row it named and was set aside
    (one email per event). Call when the event is stored `mismatched`."""
    return await _notify_event(session, event_id, Kind.webhook_event_mismatched, attempts=False)


async def _notify_event(session: AsyncSession, event_id: str, kind: Kind, *, attempts: bool) -> int:
    event = await fresh_row(session, StripeEvent, event_id)
    if event is None:
        return 0
    context: dict[str, Any] = {"event_id": event.id, "event_type": event.type}
    if attempts:
        context["attempts"] = event.attempts
    context["last_error"] = (event.last_error or "")[:500] or None
    return await send(
        session, kind, f"stripe_event:{event.id}", await admin_emails(session), context
    )


async def notify_operator(
    session: AsyncSession, source: str, title: str, message: str, details: Mapping[str, Any]
) -> int:
    """Every active admin: money Stripe moved that needs a look (once per `source`)."""
    shown = {name: str(value) for name, value in details.items()}
    context = {"title": title, "message": message, "details": shown}
    return await send(session, Kind.operator_alert, source, await admin_emails(session), context)
