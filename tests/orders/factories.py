"""Vendors, listings and Stripe PaymentIntent JSON for checkout tests (rows made with the ORM)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import Role, User
from marketplace_api.catalog.models import Listing, ListingStatus
from marketplace_api.config import ChargeType
from marketplace_api.vendors.models import Vendor, VendorStatus
from tests.fixtures.stripe import stripe_id


async def make_vendor(
    session: AsyncSession,
    *,
    display_name: str = "Acme Goods",
    charge_type: ChargeType | None = None,
    fee_bps: int | None = None,
    active: bool = True,
    commit: bool = True,
) -> Vendor:
    user = User(
        email=f"vendor-{uuid.uuid4().hex[:10]}@example.com",
        password_hash="x",
        role=Role.vendor,
    )
    session.add(user)
    await session.flush()
    vendor = Vendor(
        user_id=user.id,
        display_name=display_name,
        country="US",
        default_currency="usd",
        status=VendorStatus.active if active else VendorStatus.restricted,
        stripe_account_id=stripe_id("acct"),
        charges_enabled=active,
        payouts_enabled=active,
        details_submitted=True,
        fee_bps_override=fee_bps,
        charge_type_override=charge_type,
    )
    session.add(vendor)
    if commit:
        await session.commit()
    else:
        await session.flush()
    return vendor


async def make_listing(
    session: AsyncSession,
    vendor: Vendor,
    *,
    price: int = 2000,
    currency: str = "usd",
    stock: int = 10,
    status: ListingStatus = ListingStatus.active,
    title: str = "Widget",
) -> Listing:
    listing = Listing(
        vendor_id=vendor.id,
        title=title,
        price_amount=price,
        currency=currency,
        stock_quantity=stock,
        status=status,
    )
    session.add(listing)
    await session.commit()
    return listing


def payment_intent(
    *,
    amount: int,
    currency: str = "usd",
    status: str = "requires_payment_method",
    metadata: dict[str, str] | None = None,
    intent_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    pid = intent_id or stripe_id("pi")
    body: dict[str, Any] = {
        "id": pid,
        "object": "payment_intent",
        "amount": amount,
        "currency": currency,
        "status": status,
        "client_secret": f"{pid}_secret_{uuid.uuid4().hex[:8]}",
        "metadata": metadata or {},
        "latest_charge": None,
        "last_payment_error": None,
        "livemode": False,
        "created": 1793000000,
    }
    body.update(extra)
    return body
