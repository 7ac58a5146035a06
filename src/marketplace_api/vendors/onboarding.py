"""Stripe Connect for a vendor: the account, onboarding and dashboard links, balance, payouts.

No DB transaction is ever open while Stripe is called: each flow reads what it needs, ends the
transaction, calls Stripe (idempotency key derived from the vendor row), then records the answer
in a new short transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import Settings
from marketplace_api.integrations.stripe import StripeGateway, StripeRequestRejected
from marketplace_api.integrations.stripe.objects import Account
from marketplace_api.integrations.stripe.objects import BalanceAmount as StripeBalanceAmount
from marketplace_api.vendors import service
from marketplace_api.vendors.exceptions import (
    PayoutScheduleRejected,
    StripeAccountMissing,
    VendorAccountDisconnected,
    VendorNotOnboarded,
)
from marketplace_api.vendors.models import Vendor
from marketplace_api.vendors.schemas import (
    BalanceAmount,
    BalanceRead,
    DashboardLinkRead,
    OnboardingLinkRead,
    PaymentsConfigRead,
    PaymentsSetupRead,
    PayoutScheduleUpdate,
)
from marketplace_api.vendors.status import derive_account_state

logger = logging.getLogger(__name__)


def account_idempotency_key(vendor_id: uuid.UUID) -> str:
    """One key per vendor: however often (or concurrently) setup runs, Stripe creates ONE account
    and answers every repeat with it (for as long as Stripe keeps keys, at least 24 hours)."""
    return f"vendor:{vendor_id}:account"


def _fresh_key(vendor_id: uuid.UUID, operation: str) -> str:
    """For requests that must produce something NEW each time they are asked for.

    Account links and login links are single-use and expire within minutes: reusing one key would
    make Stripe replay the same, possibly used or expired, URL for 24 hours. The per-request nonce
    still gives the SDK's own retries of that one request the same key.
    """
    return f"vendor:{vendor_id}:{operation}:{uuid.uuid4()}"


def _timestamp(value: int | None) -> datetime:
    return datetime.fromtimestamp(value, UTC) if value else datetime.now(UTC)


async def _vendor_for_stripe(session: AsyncSession, user_id: uuid.UUID) -> Vendor:
    vendor = await service.require_vendor(session, user_id)
    if vendor.deauthorized_at is not None:
        raise VendorAccountDisconnected(
            "This vendor's Stripe account was disconnected; contact the platform."
        )
    # End the read transaction before any Stripe call (the loaded attributes stay usable).
    await session.commit()
    return vendor


def _require_account(vendor: Vendor) -> str:
    if vendor.stripe_account_id is None:
        raise StripeAccountMissing()
    return vendor.stripe_account_id


def _onboarding_urls(settings: Settings) -> tuple[str, str]:
    base = settings.frontend_url.rstrip("/")
    # refresh: the link expired or was used; the SPA calls POST .../onboarding-link and redirects.
    # return: onboarding left (not necessarily finished); the SPA calls POST .../refresh-status.
    return f"{base}/vendor/payments/refresh", f"{base}/vendor/payments/return"


async def _account_link(
    gateway: StripeGateway, settings: Settings, vendor_id: uuid.UUID, account_id: str
) -> OnboardingLinkRead:
    refresh_url, return_url = _onboarding_urls(settings)
    link = await gateway.create_account_link(
        account_id,
        refresh_url=refresh_url,
        return_url=return_url,
        idempotency_key=_fresh_key(vendor_id, "account_link"),
    )
    return OnboardingLinkRead(onboarding_url=link.url, expires_at=_timestamp(link.expires_at))


async def _store_new_account(
    session: AsyncSession, vendor_id: uuid.UUID, account: Account
) -> Vendor:
    """Record the created account, unless the vendor already has one (a concurrent setup or the
    `account.updated` webhook stored it first). `WHERE stripe_account_id IS NULL` plus the unique
    constraint mean a vendor never ends up with two accounts, whatever runs concurrently."""
    state = derive_account_state(account)
    stored = await session.scalar(
        update(Vendor)
        .where(Vendor.id == vendor_id, Vendor.stripe_account_id.is_(None))
        .values(
            **state.columns(),
            # The creation answer is the account as of its `created` time (Stripe's clock).
            stripe_account_synced_at=_timestamp(account.created),
        )
        .returning(Vendor.id)
    )
    await session.commit()
    vendor = await session.get(Vendor, vendor_id, populate_existing=True)
    if vendor is None:  # vendors are never deleted
        raise StripeAccountMissing()
    if stored is None and vendor.stripe_account_id != state.stripe_account_id:
        # Only possible if Stripe no longer knew our idempotency key (kept >= 24 h) while an
        # earlier account was stored: keep the stored one; the new one stays unused.
        logger.warning(
            "orphan stripe account created for vendor",
            extra={"vendor_id": str(vendor_id), "stripe_account": state.stripe_account_id},
        )
    return vendor


async def setup_payments(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    email: str | None,
) -> PaymentsSetupRead:
    """Create the vendor's connected account once, and a fresh onboarding link every time."""
    vendor = await _vendor_for_stripe(session, user_id)
    if vendor.stripe_account_id is None:
        account = await gateway.create_express_account(
            country=vendor.country,
            email=email,
            business_name=vendor.display_name,
            product_description=vendor.description,
            metadata={"vendor_id": str(vendor.id), "user_id": str(vendor.user_id)},
            idempotency_key=account_idempotency_key(vendor.id),
        )
        vendor = await _store_new_account(session, vendor.id, account)
    account_id = _require_account(vendor)
    link = await _account_link(gateway, settings, vendor.id, account_id)
    return PaymentsSetupRead(
        stripe_account_id=account_id,
        onboarding_url=link.onboarding_url,
        expires_at=link.expires_at,
        status=vendor.status,
    )


async def create_onboarding_link(
    session: AsyncSession, gateway: StripeGateway, settings: Settings, *, user_id: uuid.UUID
) -> OnboardingLinkRead:
    vendor = await _vendor_for_stripe(session, user_id)
    return await _account_link(gateway, settings, vendor.id, _require_account(vendor))


async def refresh_status(
    session: AsyncSession, gateway: StripeGateway, settings: Settings, *, user_id: uuid.UUID
) -> PaymentsConfigRead:
    """Pull the account from Stripe and store it (e.g. when the vendor returns from onboarding)."""
    vendor = await _vendor_for_stripe(session, user_id)
    account_id = _require_account(vendor)
    asked_at = datetime.now(UTC)  # the answer is at least this recent
    account = await gateway.retrieve_account(account_id)
    updated = await service.apply_stripe_account(session, account, observed_at=asked_at)
    await session.commit()
    return service.payments_config(updated or vendor, settings)


async def create_dashboard_link(
    session: AsyncSession, gateway: StripeGateway, *, user_id: uuid.UUID
) -> DashboardLinkRead:
    vendor = await _vendor_for_stripe(session, user_id)
    account_id = _require_account(vendor)
    if not vendor.details_submitted:
        raise VendorNotOnboarded("The Express dashboard opens once onboarding is complete.")
    link = await gateway.create_login_link(
        account_id, idempotency_key=_fresh_key(vendor.id, "login_link")
    )
    return DashboardLinkRead(url=link.url)


def _amounts(entries: Sequence[StripeBalanceAmount]) -> list[BalanceAmount]:
    return [BalanceAmount(amount=e.amount, currency=e.currency) for e in entries]


async def get_balance(
    session: AsyncSession, gateway: StripeGateway, *, user_id: uuid.UUID
) -> BalanceRead:
    vendor = await _vendor_for_stripe(session, user_id)
    balance = await gateway.retrieve_balance(_require_account(vendor))
    return BalanceRead(available=_amounts(balance.available), pending=_amounts(balance.pending))


async def update_payout_schedule(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    data: PayoutScheduleUpdate,
) -> PaymentsConfigRead:
    """Set the payout schedule on Stripe (validated by `PayoutScheduleUpdate` first) and store
    the account Stripe answers with. Only for onboarded accounts."""
    vendor = await _vendor_for_stripe(session, user_id)
    account_id = _require_account(vendor)
    if not vendor.details_submitted:
        raise VendorNotOnboarded("Payouts can be scheduled once onboarding is complete.")
    asked_at = datetime.now(UTC)
    try:
        account = await gateway.update_payout_schedule(
            account_id,
            interval=data.interval,
            delay_days=data.delay_days,
            weekly_anchor=data.weekly_anchor,
            monthly_anchor=data.monthly_anchor,
            # Not derived from the schedule alone: A -> B -> A within 24 h would replay the first
            # answer without applying A again. The nonce keeps each change its own request.
            idempotency_key=_fresh_key(vendor.id, "payout_schedule"),
        )
    except StripeRequestRejected as exc:
        # Our validation passed, so Stripe refused it for this account (delay below the
        # country's minimum, manual payouts not allowed, ...).
        raise PayoutScheduleRejected(
            "Stripe refused this schedule for the account (for example a delay below the "
            "country's minimum).",
            **exc.extra,
        ) from exc
    updated = await service.apply_stripe_account(session, account, observed_at=asked_at)
    await session.commit()
    return service.payments_config(updated or vendor, settings)
