"""Orders in the database (buyer, vendor, listing, payment, order, items) for notification and
live-status tests, and the signed `payment_intent.succeeded` that pays one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import Role, User
from marketplace_api.catalog.models import Listing, ListingStatus
from marketplace_api.config import ChargeType
from marketplace_api.money import split_fee
from marketplace_api.orders.models import Order, OrderItem
from marketplace_api.payments.models import Payment
from marketplace_api.vendors.models import Vendor, VendorStatus
from tests.fixtures.stripe import event, stripe_id


@dataclass
class PlacedOrder:
    buyer_id: uuid.UUID
    buyer_email: str
    vendor: Vendor
    vendor_email: str
    payment: Payment
    order: Order


async def make_vendor(
    session: AsyncSession, *, display_name: str = "Acme Ceramics", user: User | None = None
) -> tuple[Vendor, str]:
    if user is None:
        user = User(
            email=f"vendor-{uuid.uuid4().hex[:10]}@example.com",
            password_hash="x",
            role=Role.vendor,
            full_name="Vera Vendor",
        )
        session.add(user)
        await session.flush()
    vendor = Vendor(
        user_id=user.id,
        display_name=display_name,
        country="US",
        default_currency="usd",
        status=VendorStatus.active,
        stripe_account_id=stripe_id("acct"),
        charges_enabled=True,
        payouts_enabled=True,
        details_submitted=True,
    )
    session.add(vendor)
    await session.flush()
    return vendor, user.email


async def place_order(
    session: AsyncSession,
    buyer: User,
    *,
    vendor: Vendor | None = None,
    items: list[tuple[str, int, int]] | None = None,
    currency: str = "usd",
    fee_bps: int = 1000,
) -> PlacedOrder:
    """A committed, unpaid order of `buyer` (payment `requires_payment` with a PaymentIntent id)
    for `items` = [(title, unit amount, quantity)]."""
    items = items or [("Blue mug", 1250, 2), ("Teapot", 3999, 1)]
    if vendor is None:
        vendor, vendor_email = await make_vendor(session)
    else:
        owner = await session.get(User, vendor.user_id)
        assert owner is not None
        vendor_email = owner.email
    now = datetime.now(UTC)
    amount = sum(unit * quantity for _, unit, quantity in items)
    split = split_fee(amount, fee_bps)
    fee, vendor_amount = split.platform_fee, split.vendor_amount
    payment = Payment(
        buyer_id=buyer.id,
        charge_type=ChargeType.destination,
        currency=currency,
        amount=amount,
        platform_fee=fee,
        stripe_payment_intent_id=stripe_id("pi"),
        reservation_expires_at=now + timedelta(minutes=15),
    )
    session.add(payment)
    await session.flush()
    order = Order(
        payment_id=payment.id,
        buyer_id=buyer.id,
        vendor_id=vendor.id,
        vendor_stripe_account_id=vendor.stripe_account_id or "acct_x",
        currency=currency,
        amount=amount,
        platform_fee=fee,
        vendor_amount=vendor_amount,
        fee_bps=fee_bps,
        reservation_expires_at=now + timedelta(minutes=15),
    )
    session.add(order)
    await session.flush()
    for title, unit, quantity in items:
        listing = Listing(
            vendor_id=vendor.id,
            title=title,
            price_amount=unit,
            currency=currency,
            stock_quantity=10,
            status=ListingStatus.active,
        )
        session.add(listing)
        await session.flush()
        session.add(
            OrderItem(
                order_id=order.id,
                listing_id=listing.id,
                title=title,
                unit_amount=unit,
                quantity=quantity,
                amount=unit * quantity,
            )
        )
    await session.commit()
    return PlacedOrder(buyer.id, buyer.email, vendor, vendor_email, payment, order)


def succeeded_event(placed: PlacedOrder, *, event_id: str | None = None) -> dict[str, Any]:
    """A Stripe `payment_intent.succeeded` event for the order's payment."""
    payment = placed.payment
    intent = {
        "id": payment.stripe_payment_intent_id,
        "object": "payment_intent",
        "amount": payment.amount,
        "currency": payment.currency,
        "status": "succeeded",
        "metadata": {"payment_id": str(payment.id)},
        "latest_charge": stripe_id("ch"),
        "last_payment_error": None,
        "livemode": False,
    }
    return event("payment_intent.succeeded", intent, event_id=event_id)
