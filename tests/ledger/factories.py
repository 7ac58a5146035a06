"""Paid payments and orders in the database (no checkout round trip), and Stripe-shaped JSON for
transfers, reversals and refunds, for the tests of everything after the payment."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import Role, User
from marketplace_api.accounts.security import create_access_token
from marketplace_api.config import ChargeType, Settings
from marketplace_api.ledger import service as ledger
from marketplace_api.money import split_fee
from marketplace_api.orders.models import FulfilmentStatus, Order, OrderStatus
from marketplace_api.payments.models import Payment, PaymentStatus
from marketplace_api.vendors.models import Vendor
from tests.fixtures.stripe import form, ok, stripe_id
from tests.orders.factories import make_vendor

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@dataclass
class Paid:
    payment: Payment
    orders: list[Order]
    vendors: list[Vendor]

    @property
    def order(self) -> Order:
        return self.orders[0]

    @property
    def vendor(self) -> Vendor:
        return self.vendors[0]


async def make_buyer(session: AsyncSession) -> User:
    user = User(
        email=f"buyer-{uuid.uuid4().hex[:10]}@example.com", password_hash="x", role=Role.buyer
    )
    session.add(user)
    await session.commit()
    return user


def vendor_headers(settings: Settings, vendor: Vendor) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_access_token(settings, vendor.user_id, Role.vendor)}"}


async def make_paid(
    session: AsyncSession,
    *,
    charge_type: ChargeType = ChargeType.separate,
    amounts: tuple[int, ...] = (2000,),
    fee_bps: int = 1000,
    currency: str = "usd",
    buyer_id: uuid.UUID | None = None,
    vendors: list[Vendor] | None = None,
    shipped_at: datetime | None = None,
    record_ledger: bool = True,
    succeeded_at: datetime = NOW,
) -> Paid:
    """A succeeded payment with one paid order per amount (one vendor each), as the checkout and
    the `payment_intent.succeeded` webhook leave them (plus the success's ledger rows)."""
    if buyer_id is None:
        buyer_id = (await make_buyer(session)).id
    vendors = vendors or [await make_vendor(session) for _ in amounts]
    splits = [split_fee(a, fee_bps) for a in amounts]
    payment_id = uuid.uuid4()
    payment = Payment(
        id=payment_id,
        buyer_id=buyer_id,
        charge_type=charge_type,
        status=PaymentStatus.succeeded,
        currency=currency,
        amount=sum(amounts),
        platform_fee=sum(s.platform_fee for s in splits),
        stripe_payment_intent_id=stripe_id("pi"),
        stripe_charge_id=stripe_id("ch"),
        stripe_account_id=vendors[0].stripe_account_id
        if charge_type is ChargeType.direct
        else None,
        stripe_transfer_id=stripe_id("tr") if charge_type is ChargeType.destination else None,
        transfer_group=f"payment_{payment_id}" if charge_type is ChargeType.separate else None,
        reservation_expires_at=succeeded_at,
        succeeded_at=succeeded_at,
        status_updated_at=succeeded_at,
    )
    session.add(payment)
    await session.flush()
    orders = []
    for vendor, split in zip(vendors, splits, strict=True):
        order = Order(
            payment_id=payment.id,
            buyer_id=buyer_id,
            vendor_id=vendor.id,
            vendor_stripe_account_id=str(vendor.stripe_account_id),
            status=OrderStatus.paid,
            fulfilment_status=FulfilmentStatus.shipped
            if shipped_at
            else FulfilmentStatus.unfulfilled,
            currency=currency,
            amount=split.amount,
            platform_fee=split.platform_fee,
            vendor_amount=split.vendor_amount,
            fee_bps=fee_bps,
            reservation_expires_at=succeeded_at,
            paid_at=succeeded_at,
            shipped_at=shipped_at,
        )
        session.add(order)
        orders.append(order)
    await session.flush()
    if record_ledger:
        await ledger.record_payment_succeeded(session, payment)
    await session.commit()
    return Paid(payment, orders, vendors)


# --- Stripe JSON -------------------------------------------------------------------------------


def metadata_of(request: httpx.Request) -> dict[str, str]:
    return {
        k[len("metadata[") : -1]: v for k, v in form(request).items() if k.startswith("metadata[")
    }


def transfer_handler(request: httpx.Request) -> httpx.Response:
    """POST /v1/transfers: answers a transfer echoing what was sent (id from the key, like a
    replay would)."""
    fields = form(request)
    key = request.headers.get("Idempotency-Key", "")
    return ok(
        {
            "id": "tr_" + uuid.uuid5(uuid.NAMESPACE_URL, key).hex[:24],
            "object": "transfer",
            "amount": int(fields["amount"]),
            "amount_reversed": 0,
            "currency": fields["currency"],
            "destination": fields["destination"],
            "source_transaction": fields.get("source_transaction"),
            "transfer_group": fields.get("transfer_group"),
            "metadata": metadata_of(request),
            "reversed": False,
            "created": 1793000200,
            "livemode": False,
        }
    )


def reversal_handler(request: httpx.Request, transfer_id: str) -> httpx.Response:
    fields = form(request)
    key = request.headers.get("Idempotency-Key", "")
    return ok(
        {
            "id": "trr_" + uuid.uuid5(uuid.NAMESPACE_URL, key).hex[:24],
            "object": "transfer_reversal",
            "amount": int(fields["amount"]),
            "currency": "usd",
            "metadata": metadata_of(request),
            "transfer": transfer_id,
            "created": 1793000900,
        }
    )


def refund_json(
    *,
    amount: int,
    status: str = "succeeded",
    metadata: dict[str, str] | None = None,
    refund_id: str | None = None,
    payment_intent: str | None = None,
    charge: str | None = None,
    transfer_reversal: str | None = None,
    failure_reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": refund_id or stripe_id("re"),
        "object": "refund",
        "amount": amount,
        "currency": "usd",
        "charge": charge,
        "payment_intent": payment_intent,
        "metadata": metadata or {},
        "reason": "requested_by_customer",
        "status": status,
        "failure_reason": failure_reason,
        "transfer_reversal": transfer_reversal,
        "created": 1793000800,
    }


def refund_handler(status: str = "succeeded", with_reversal: bool = False) -> Any:
    def handle(request: httpx.Request) -> httpx.Response:
        fields = form(request)
        key = request.headers.get("Idempotency-Key", "")
        return ok(
            refund_json(
                amount=int(fields["amount"]),
                status=status,
                metadata=metadata_of(request),
                refund_id="re_" + uuid.uuid5(uuid.NAMESPACE_URL, key).hex[:24],
                payment_intent=fields.get("payment_intent"),
                transfer_reversal=stripe_id("trr") if with_reversal else None,
            )
        )

    return handle


def days_ago(days: int, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days)


async def deliver(
    client: httpx.AsyncClient, evt: dict[str, Any], *, connect: bool = False
) -> dict[str, Any]:
    """POST a signed event to /webhooks/stripe (platform or Connect secret); the receipt."""
    from tests.fixtures.stripe import WEBHOOK_SECRET, WEBHOOK_SECRET_CONNECT, event_body, sign

    body = event_body(evt)
    response = await client.post(
        "/webhooks/stripe",
        content=body,
        headers={
            "Stripe-Signature": sign(body, WEBHOOK_SECRET_CONNECT if connect else WEBHOOK_SECRET),
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200, response.text
    receipt: dict[str, Any] = response.json()
    return receipt


def dispute_json(
    paid: Paid, *, status: str = "needs_response", amount: int | None = None, dispute_id: str = ""
) -> dict[str, Any]:
    return {
        "id": dispute_id or stripe_id("du"),
        "object": "dispute",
        "amount": amount if amount is not None else paid.payment.amount,
        "currency": paid.payment.currency,
        "charge": paid.payment.stripe_charge_id,
        "payment_intent": paid.payment.stripe_payment_intent_id,
        "reason": "fraudulent",
        "status": status,
        "is_charge_refundable": False,
        "evidence_details": {"due_by": 1793900000, "has_evidence": False, "past_due": False},
        "balance_transactions": [],
        "metadata": {},
        "created": 1793100000,
        "livemode": False,
    }
