"""`/v1/vendor/payments`: Stripe Connect onboarding, status, dashboard, balance and payouts."""

from __future__ import annotations

from fastapi import APIRouter

from marketplace_api.deps import (
    CurrentVendor,
    CurrentVendorUser,
    SessionDep,
    SettingsDep,
    StripeGatewayDep,
)
from marketplace_api.errors import problem_responses
from marketplace_api.integrations.stripe import (
    StripeNotConfigured,
    StripePermissionDenied,
    StripeRateLimited,
    StripeRequestRejected,
    StripeUnavailable,
)
from marketplace_api.vendors import onboarding, service
from marketplace_api.vendors.exceptions import (
    PayoutScheduleRejected,
    StripeAccountMissing,
    VendorAccountDisconnected,
    VendorNotOnboarded,
    VendorProfileRequired,
)
from marketplace_api.vendors.schemas import (
    BalanceRead,
    DashboardLinkRead,
    OnboardingLinkRead,
    PaymentsConfigRead,
    PaymentsSetupRead,
    PayoutScheduleUpdate,
)

router = APIRouter(prefix="/payments", tags=["vendor"])

# Every Stripe-backed route can answer these.
STRIPE_ERRORS = (
    StripeNotConfigured,
    StripeUnavailable,
    StripeRateLimited,
    StripeRequestRejected,
    StripePermissionDenied,
)


@router.post(
    "/setup",
    summary="Create your Stripe account (once) and get an onboarding link",
    description="Creates the Stripe Connect account on the first call (idempotent: a repeated "
    "or concurrent call never creates a second one) and answers a fresh, single-use onboarding "
    "URL each time. Redirect the vendor to `onboarding_url`. Needs the vendor profile first.",
    responses=problem_responses(VendorProfileRequired, VendorAccountDisconnected, *STRIPE_ERRORS),
)
async def setup_payments(
    user: CurrentVendorUser,
    session: SessionDep,
    settings: SettingsDep,
    gateway: StripeGatewayDep,
) -> PaymentsSetupRead:
    return await onboarding.setup_payments(
        session, gateway, settings, user_id=user.id, email=user.email
    )


@router.post(
    "/onboarding-link",
    summary="A fresh onboarding link (the previous one expired or was used)",
    responses=problem_responses(
        VendorProfileRequired, StripeAccountMissing, VendorAccountDisconnected, *STRIPE_ERRORS
    ),
)
async def create_onboarding_link(
    user: CurrentVendorUser,
    session: SessionDep,
    settings: SettingsDep,
    gateway: StripeGatewayDep,
) -> OnboardingLinkRead:
    return await onboarding.create_onboarding_link(session, gateway, settings, user_id=user.id)


@router.get(
    "/config",
    summary="Your Stripe account status, requirements, fee and payout schedule",
    description="From our stored copy of the account (kept current by webhooks); no Stripe call.",
    responses=problem_responses(VendorProfileRequired),
)
async def get_payments_config(vendor: CurrentVendor, settings: SettingsDep) -> PaymentsConfigRead:
    return service.payments_config(vendor, settings)


@router.post(
    "/refresh-status",
    summary="Re-read your account from Stripe and store it",
    description="Call it when the vendor comes back from onboarding (the return URL).",
    responses=problem_responses(
        VendorProfileRequired, StripeAccountMissing, VendorAccountDisconnected, *STRIPE_ERRORS
    ),
)
async def refresh_payments_status(
    user: CurrentVendorUser,
    session: SessionDep,
    settings: SettingsDep,
    gateway: StripeGatewayDep,
) -> PaymentsConfigRead:
    return await onboarding.refresh_status(session, gateway, settings, user_id=user.id)


@router.post(
    "/dashboard-link",
    summary="A single-use login link to your Stripe Express dashboard",
    responses=problem_responses(
        VendorProfileRequired,
        StripeAccountMissing,
        VendorNotOnboarded,
        VendorAccountDisconnected,
        *STRIPE_ERRORS,
    ),
)
async def create_dashboard_link(
    user: CurrentVendorUser, session: SessionDep, gateway: StripeGatewayDep
) -> DashboardLinkRead:
    return await onboarding.create_dashboard_link(session, gateway, user_id=user.id)


@router.get(
    "/balance",
    summary="Your Stripe balance: available and pending, per currency",
    responses=problem_responses(
        VendorProfileRequired, StripeAccountMissing, VendorAccountDisconnected, *STRIPE_ERRORS
    ),
)
async def get_balance(
    user: CurrentVendorUser, session: SessionDep, gateway: StripeGatewayDep
) -> BalanceRead:
    return await onboarding.get_balance(session, gateway, user_id=user.id)


@router.put(
    "/payout-schedule",
    summary="Set how often Stripe pays out your balance",
    description="`interval` daily, weekly (with `weekly_anchor`), monthly (with "
    "`monthly_anchor`) or manual; `delay_days` 1-31 or `minimum`. Validated before Stripe is "
    "called (422 `validation_error`); only once onboarding is complete.",
    responses=problem_responses(
        VendorProfileRequired,
        StripeAccountMissing,
        VendorNotOnboarded,
        VendorAccountDisconnected,
        PayoutScheduleRejected,
        *STRIPE_ERRORS,
    ),
)
async def update_payout_schedule(
    body: PayoutScheduleUpdate,
    user: CurrentVendorUser,
    session: SessionDep,
    settings: SettingsDep,
    gateway: StripeGatewayDep,
) -> PaymentsConfigRead:
    return await onboarding.update_payout_schedule(
        session, gateway, settings, user_id=user.id, data=body
    )
