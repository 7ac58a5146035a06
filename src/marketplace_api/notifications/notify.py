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
from typing import Any, TypeVarTuple

from sqlalchemy import Result, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import Role, User
from marketplace_api.disputes.models import Dispute
from marketplace_api.fulfilment.models import Shipment
from marketplace_api.notifications.kinds import Kind
from marketplace_api.notifications.service import Email, dedupe_key, notify_many
from marketplace_api.orders.models import Order, OrderItem
from marketplace_api.payments.models import Payment
from marketplace_api.refunds.models import DuplicatePaymentRefund, Refund
from marketplace_api.transfers.models import Transfer
from marketplace_api.vendors.models import Vendor
from marketplace_api.webhooks.models import StripeEvent

_Ts = TypeVarTuple("_Ts")


async def _fresh(session: AsyncSession, statement: Select[*_Ts]) -> Result[*_Ts]:
    """Rows as committed in this transaction: pending changes flushed first, and objects already
    in the session refreshed (the caller may have changed them with a bulk UPDATE)."""
    await session.flush()
    return await session.execute(statement.execution_options(populate_existing=True))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _emails(
    kind: Kind, source: str, recipients: Sequence[str], context: Mapping[str, Any]
) -> list[Email]:
    """One email per distinct recipient (empty addresses skipped), in order."""
    unique = dict.fromkeys(r for r in recipients if r)
    return [Email(kind, r, context, dedupe_key(source, r, kind)) for r in unique]


async def _send(
    session: AsyncSession,
    kind: Kind,
    source: str,
    recipients: Sequence[str],
    context: Mapping[str, Any],
) -> int:
    return len(await notify_many(session, _emails(kind, source, recipients, context)))


async def _items(
    session: AsyncSession, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    rows = (
        await _fresh(
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


async def _vendor_contacts(
    session: AsyncSession, vendor_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str]]:
    """vendor id -> (display name, email of the vendor's user)."""
    rows = await session.execute(
        select(Vendor.id, Vendor.display_name, User.email)
        .join(User, User.id == Vendor.user_id)
        .where(Vendor.id.in_(vendor_ids))
    )
    return {vendor_id: (name, email) for vendor_id, name, email in rows.all()}


async def _user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return (await _fresh(session, select(User).where(User.id == user_id))).scalar_one_or_none()


def _name(user: User) -> str:
    return user.full_name or user.email


async def _admin_emails(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(User.email)
        .where(User.role == Role.admin, User.is_active.is_(True))
        .order_by(User.email)
    )
    return list(rows.scalars())


async def _order(session: AsyncSession, order_id: uuid.UUID) -> Order | None:
    return (await _fresh(session, select(Order).where(Order.id == order_id))).scalar_one_or_none()


# --- buyer -----------------------------------------------------------------------------------


async def notify_order_paid(session: AsyncSession, payment_id: uuid.UUID) -> int:
    """The buyer's receipt (every order of the payment: items, amounts, vendor) and a "new paid
    order" email to each vendor. Call when the payment has succeeded and its orders are paid."""
    payment = (
        await _fresh(session, select(Payment).where(Payment.id == payment_id))
    ).scalar_one_or_none()
    if payment is None:
        return 0
    orders = list(
        (
            await _fresh(
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
    buyer = await _user(session, payment.buyer_id)
    if not orders or buyer is None:
        return 0
    items = await _items(session, [o.id for o in orders])
    vendors = await _vendor_contacts(session, [o.vendor_id for o in orders])
    paid_at = payment.succeeded_at or max((o.paid_at or o.status_updated_at) for o in orders)
    receipt = {
        "buyer_name": _name(buyer),
        "payment_id": str(payment.id),
        "currency": payment.currency,
        "total": sum(o.amount for o in orders),
        "paid_at": _iso(paid_at),
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
    emails = _emails(Kind.order_paid, f"payment:{payment.id}", [buyer.email], receipt)
    for order in orders:
        vendor_name, vendor_email = vendors.get(order.vendor_id, ("", ""))
        context = {
            "vendor_name": vendor_name,
            "buyer_name": _name(buyer),
            "order_id": str(order.id),
            "currency": order.currency,
            "amount": order.amount,
            "platform_fee": order.platform_fee,
            "vendor_amount": order.vendor_amount,
            "items": items[order.id],
        }
        emails += _emails(Kind.vendor_new_order, f"order:{order.id}", [vendor_email], context)
    return len(await notify_many(session, emails))


async def notify_order_shipped(session: AsyncSession, order_id: uuid.UUID) -> int:
    """The buyer's "your order has shipped", with the shipment's carrier and tracking."""
    order = await _order(session, order_id)
    if order is None:
        return 0
    buyer = await _user(session, order.buyer_id)
    if buyer is None:
        return 0
    shipment = (
        await _fresh(session, select(Shipment).where(Shipment.order_id == order_id))
    ).scalar_one_or_none()
    vendors = await _vendor_contacts(session, [order.vendor_id])
    context = {
        "buyer_name": _name(buyer),
        "order_id": str(order.id),
        "vendor_name": vendors.get(order.vendor_id, ("", ""))[0],
        "carrier": shipment.carrier if shipment else None,
        "tracking_number": shipment.tracking_number if shipment else None,
        "tracking_url": shipment.tracking_url if shipment else None,
        "items": (await _items(session, [order.id]))[order.id],
    }
    return await _send(session, Kind.order_shipped, f"order:{order.id}", [buyer.email], context)


async def notify_refund_issued(session: AsyncSession, refund_id: uuid.UUID) -> int:
    """The buyer's "refund issued": call when the refund row has succeeded (and the order's
    `amount_refunded` includes it)."""
    refund = (
        await _fresh(session, select(Refund).where(Refund.id == refund_id))
    ).scalar_one_or_none()
    if refund is None:
        return 0
    order = await _order(session, refund.order_id)
    if order is None:
        return 0
    buyer = await _user(session, order.buyer_id)
    if buyer is None:
        return 0
    vendors = await _vendor_contacts(session, [order.vendor_id])
    context = {
        "buyer_name": _name(buyer),
        "order_id": str(order.id),
        "vendor_name": vendors.get(order.vendor_id, ("", ""))[0],
        "amount": refund.amount,
        "currency": refund.currency,
        "amount_refunded": max(order.amount_refunded, refund.amount),
        "order_amount": order.amount,
        "reason": refund.reason.value.replace("_", " ") if refund.reason else None,
    }
    return await _send(session, Kind.refund_issued, f"refund:{refund.id}", [buyer.email], context)


async def notify_duplicate_payment_refunded(session: AsyncSession, duplicate_id: uuid.UUID) -> int:
    """The buyer's "you paid twice, one payment was refunded": call when the duplicate's refund
    has succeeded (one email per duplicate)."""
    row = (
        await _fresh(
            session, select(DuplicatePaymentRefund).where(DuplicatePaymentRefund.id == duplicate_id)
        )
    ).scalar_one_or_none()
    if row is None:
        return 0
    payment = await session.get(Payment, row.payment_id)
    buyer = await _user(session, payment.buyer_id) if payment is not None else None
    if buyer is None:
        return 0
    context = {
        "buyer_name": _name(buyer),
        "payment_id": str(row.payment_id),
        "amount": row.amount,
        "currency": row.currency,
    }
    return await _send(
        session,
        Kind.duplicate_payment_refunded,
        f"duplicate_payment:{row.stripe_payment_intent_id}",
        [buyer.email],
        context,
    )


# --- vendor ----------------------------------------------------------------------------------


async def notify_dispute_opened(session: AsyncSession, dispute_id: uuid.UUID) -> int:
    """Each vendor of the disputed payment, with the evidence deadline."""
    dispute = (
        await _fresh(session, select(Dispute).where(Dispute.id == dispute_id))
    ).scalar_one_or_none()
    if dispute is None:
        return 0
    orders = list(
        (
            await _fresh(
                session,
                select(Order).where(Order.payment_id == dispute.payment_id).order_by(Order.id),
            )
        ).scalars()
    )
    vendors = await _vendor_contacts(session, [o.vendor_id for o in orders])
    emails: list[Email] = []
    for vendor_id, (vendor_name, vendor_email) in vendors.items():
        context = {
            "vendor_name": vendor_name,
            "dispute_id": str(dispute.id),
            "amount": dispute.amount,
            "currency": dispute.currency,
            "reason": dispute.reason.replace("_", " ") if dispute.reason else None,
            "evidence_due_by": _iso(dispute.evidence_due_by),
            "order_ids": [str(o.id) for o in orders if o.vendor_id == vendor_id],
        }
        emails += _emails(Kind.dispute_opened, f"dispute:{dispute.id}", [vendor_email], context)
    return len(await notify_many(session, emails))


async def _transfer(session: AsyncSession, transfer_id: uuid.UUID) -> Transfer | None:
    return (
        await _fresh(session, select(Transfer).where(Transfer.id == transfer_id))
    ).scalar_one_or_none()


async def notify_transfer_released(session: AsyncSession, transfer_id: uuid.UUID) -> int:
    """The vendor's "funds released": call when the transfer row is paid."""
    transfer = await _transfer(session, transfer_id)
    if transfer is None:
        return 0
    vendors = await _vendor_contacts(session, [transfer.vendor_id])
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
    return await _send(
        session, Kind.transfer_released, f"transfer:{transfer.id}", [vendor_email], context
    )


async def _vendor_by_account(session: AsyncSession, stripe_account_id: str) -> Vendor | None:
    return (
        await _fresh(session, select(Vendor).where(Vendor.stripe_account_id == stripe_account_id))
    ).scalar_one_or_none()


async def notify_payout_failed(
    session: AsyncSession, stripe_account_id: str, payout: Mapping[str, Any]
) -> int:
    """The vendor whose connected account's payout failed (`payout`: the Stripe payout JSON of a
    `payout.failed` Connect event)."""
    vendor = await _vendor_by_account(session, stripe_account_id)
    payout_id = str(payout.get("id") or "")
    if vendor is None or not payout_id:
        return 0
    contacts = await _vendor_contacts(session, [vendor.id])
    vendor_name, vendor_email = contacts[vendor.id]
    amount = payout.get("amount")
    context = {
        "vendor_name": vendor_name,
        "payout_id": payout_id,
        "amount": amount if isinstance(amount, int) else 0,
        "currency": str(payout.get("currency") or vendor.default_currency),
        "failure_code": payout.get("failure_code"),
        "failure_message": payout.get("failure_message"),
    }
    return await _send(session, Kind.payout_failed, f"payout:{payout_id}", [vendor_email], context)


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
    vendor = (
        await _fresh(session, select(Vendor).where(Vendor.id == vendor_id))
    ).scalar_one_or_none()
    if vendor is None:
        return 0
    currently_due = sorted(vendor.requirements_currently_due or [])
    past_due = sorted(vendor.requirements_past_due or [])
    if not currently_due and not past_due:
        return 0
    contacts = await _vendor_contacts(session, [vendor_id])
    vendor_name, vendor_email = contacts[vendor_id]
    context = {
        "vendor_name": vendor_name,
        "currently_due": currently_due,
        "past_due": past_due,
        "deadline": None if deadline is None else datetime.fromtimestamp(deadline, UTC).isoformat(),
    }
    digest = hashlib.sha256("|".join([*currently_due, "#", *past_due]).encode()).hexdigest()
    source = f"vendor:{vendor_id}:requirements:{digest[:16]}"
    return await _send(session, Kind.requirements_due, source, [vendor_email], context)


# --- admin -----------------------------------------------------------------------------------


async def notify_transfer_failed(session: AsyncSession, transfer_id: uuid.UUID) -> int:
    """Every active admin: a transfer to a vendor failed for good (one email per transfer)."""
    transfer = await _transfer(session, transfer_id)
    if transfer is None:
        return 0
    contacts = await _vendor_contacts(session, [transfer.vendor_id])
    context = {
        "order_id": str(transfer.order_id),
        "transfer_id": str(transfer.id),
        "vendor_name": contacts.get(transfer.vendor_id, (str(transfer.vendor_id), ""))[0],
        "amount": transfer.amount,
        "currency": transfer.currency,
        "attempts": transfer.attempts,
        "error": transfer.last_error,
    }
    return await _send(
        session,
        Kind.transfer_failed,
        f"transfer:{transfer.id}",
        await _admin_emails(session),
        context,
    )


async def notify_webhook_event_failed(session: AsyncSession, event_id: str) -> int:
    """Every active admin: a stored Stripe event failed for good (one email per event). Call
    when the event is moved to `failed`."""
    event = (
        await _fresh(session, select(StripeEvent).where(StripeEvent.id == event_id))
    ).scalar_one_or_none()
    if event is None:
        return 0
    context = {
        "event_id": event.id,
        "event_type": event.type,
        "attempts": event.attempts,
        "last_error": (event.last_error or "")[:500] or None,
    }
    return await _send(
        session,
        Kind.webhook_event_failed,
        f"stripe_event:{event.id}",
        await _admin_emails(session),
        context,
    )


async def notify_webhook_event_mismatched(session: AsyncSession, event_id: str) -> int:
    """Every active admin: a Stripe event disagreed with the row it named and was set aside
    (one email per event). Call when the event is stored `mismatched`."""
    event = (
        await _fresh(session, select(StripeEvent).where(StripeEvent.id == event_id))
    ).scalar_one_or_none()
    if event is None:
        return 0
    context = {
        "event_id": event.id,
        "event_type": event.type,
        "last_error": (event.last_error or "")[:500] or None,
    }
    return await _send(
        session,
        Kind.webhook_event_mismatched,
        f"stripe_event:{event.id}",
        await _admin_emails(session),
        context,
    )


async def notify_operator(
    session: AsyncSession, source: str, title: str, message: str, details: Mapping[str, Any]
) -> int:
    """Every active admin: money Stripe moved that needs a look (once per `source`)."""
    shown = {name: str(value) for name, value in details.items()}
    context = {"title": title, "message": message, "details": shown}
    return await _send(session, Kind.operator_alert, source, await _admin_emails(session), context)
