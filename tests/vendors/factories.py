"""Stripe-shaped account JSON and vendors in the database, for vendor and catalog tests."""

from __future__ import annotations

import copy
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.accounts.models import Role, User
from marketplace_api.integrations.stripe.objects import Account, parse_object
from marketplace_api.vendors.models import Vendor, VendorStatus
from tests.fixtures.stripe import stripe_id

# stripe 16's HTTPXClient posts with `data=<bytes>`, which httpx deprecates; with
# `filterwarnings = error` that warning would become a connection error inside the SDK.
allow_stripe_sdk_warning = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)

NEW_REQUIREMENTS = {
    "alternatives": [],
    "current_deadline": None,
    "currently_due": ["business_type", "external_account", "tos_acceptance.date"],
    "disabled_reason": "requirements.past_due",
    "errors": [],
    "eventually_due": ["business_type", "external_account", "tos_acceptance.date"],
    "past_due": ["business_type", "external_account"],
    "pending_verification": [],
}

NO_REQUIREMENTS = {
    "alternatives": [],
    "current_deadline": None,
    "currently_due": [],
    "disabled_reason": None,
    "errors": [],
    "eventually_due": [],
    "past_due": [],
    "pending_verification": [],
}


def account(
    account_id: str | None = None,
    *,
    vendor_id: uuid.UUID | str | None = None,
    charges_enabled: bool = False,
    payouts_enabled: bool = False,
    details_submitted: bool = False,
    requirements: dict[str, Any] | None = None,
    capabilities: dict[str, str] | None = None,
    schedule: dict[str, Any] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A v1 `account` object (controller properties equivalent to Express)."""
    return {
        "id": account_id or stripe_id("acct"),
        "object": "account",
        "business_profile": {"name": "Acme", "mcc": None, "url": None},
        "business_type": None,
        "capabilities": capabilities
        if capabilities is not None
        else {"card_payments": "inactive", "transfers": "inactive"},
        "charges_enabled": charges_enabled,
        "payouts_enabled": payouts_enabled,
        "details_submitted": details_submitted,
        "controller": {
            "type": "application",
            "is_controller": True,
            "fees": {"payer": "application"},
            "losses": {"payments": "application"},
            "requirement_collection": "stripe",
            "stripe_dashboard": {"type": "express"},
        },
        "country": "US",
        "created": created or int(time.time()),
        "default_currency": "usd",
        "email": "seller@example.com",
        "metadata": {"vendor_id": str(vendor_id)} if vendor_id else {},
        "requirements": copy.deepcopy(
            requirements if requirements is not None else NEW_REQUIREMENTS
        ),
        "settings": {
            "payouts": {
                "debit_negative_balances": True,
                "schedule": schedule or {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            }
        },
        "type": "none",
    }


def active_account(account_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("charges_enabled", True)
    kwargs.setdefault("payouts_enabled", True)
    kwargs.setdefault("details_submitted", True)
    kwargs.setdefault("requirements", NO_REQUIREMENTS)
    kwargs.setdefault("capabilities", {"card_payments": "active", "transfers": "active"})
    return account(account_id, **kwargs)


def ts(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


async def make_vendor(
    session: AsyncSession,
    *,
    user: User | None = None,
    active: bool = False,
    stripe_account_id: str | None = None,
    country: str = "US",
    display_name: str = "Acme Ceramics",
    **fields: Any,
) -> Vendor:
    """A vendor row (and its user when not given). `active=True`: onboarded and able to sell."""
    if user is None:
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
        country=country,
        default_currency="usd",
        **fields,
    )
    if active:
        vendor.stripe_account_id = stripe_account_id or stripe_id("acct")
        vendor.status = VendorStatus.active
        vendor.charges_enabled = True
        vendor.payouts_enabled = True
        vendor.details_submitted = True
    elif stripe_account_id:
        vendor.stripe_account_id = stripe_account_id
        vendor.status = VendorStatus.onboarding
    session.add(vendor)
    await session.commit()
    return vendor


def as_account(data: dict[str, Any]) -> Account:
    """A factory's account JSON as the gateway answers it."""
    return parse_object(Account, data)
