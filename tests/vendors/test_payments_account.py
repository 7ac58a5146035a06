"""Onboarding link, config, refresh, dashboard link, balance and payout schedule: exact requests
and Stripe failures. The stateful lifecycle runs on the simulator
(`test_onboarding_on_simulator.py`)."""

from __future__ import annotations

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.vendors.models import Vendor, VendorStatus
from tests.conftest import AuthUser
from tests.fixtures.accounts import (
    active_account,
    make_vendor,
)
from tests.fixtures.stripe import form, ok, stripe_error

LINK = {
    "object": "account_link",
    "created": 1793000000,
    "expires_at": 1793000300,
    "url": "https://connect.stripe.com/setup/e/acct_x/Zz",
}


async def test_onboarding_link_needs_an_account(
    client: httpx.AsyncClient, session: AsyncSession, vendor_user: AuthUser
) -> None:
    await make_vendor(session, user=vendor_user.user)
    response = await client.post("/v1/vendor/payments/onboarding-link", headers=vendor_user.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "stripe_account_missing"


async def test_onboarding_link_is_fresh_for_the_stored_account(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session, user=vendor_user.user, stripe_account_id="acct_x")
    link = stripe_api.post("/v1/account_links").mock(return_value=ok(LINK))
    response = await client.post("/v1/vendor/payments/onboarding-link", headers=vendor_user.headers)
    assert response.status_code == 200
    assert response.json()["onboarding_url"] == LINK["url"]
    sent = link.calls.last.request
    assert form(sent)["account"] == "acct_x"
    assert form(sent)["type"] == "account_onboarding"
    assert sent.headers["Idempotency-Key"].startswith(f"vendor:{vendor.id}:account_link:")


async def test_config_reports_stored_state_and_platform_policy(
    client: httpx.AsyncClient, session: AsyncSession, vendor_user: AuthUser
) -> None:
    vendor = await make_vendor(session, user=vendor_user.user, stripe_account_id="acct_cfg")
    vendor.requirements_currently_due = ["external_account"]
    vendor.fee_bps_override = 250
    await session.commit()
    response = await client.get("/v1/vendor/payments/config", headers=vendor_user.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["stripe_account_id"] == "acct_cfg"
    assert body["status"] == "onboarding"
    assert body["requirements"] == {
        "currently_due": ["external_account"],
        "past_due": [],
        "disabled_reason": None,
    }
    assert body["needs_onboarding"] is True
    assert body["can_accept_payments"] is False
    assert body["platform_fee_bps"] == 250
    assert body["charge_type"] == "destination"


async def test_refresh_status_stripe_down_keeps_state(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session, user=vendor_user.user, stripe_account_id="acct_down")
    stripe_api.get("/v1/accounts/acct_down").mock(side_effect=httpx.ConnectTimeout("slow"))
    response = await client.post("/v1/vendor/payments/refresh-status", headers=vendor_user.headers)
    assert response.status_code == 503
    assert response.json()["code"] == "stripe_unavailable"
    row = await session.get(Vendor, vendor.id, populate_existing=True)
    assert row is not None
    assert row.status is VendorStatus.onboarding


async def test_balance_permission_error_is_a_problem(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    await make_vendor(session, user=vendor_user.user, active=True, stripe_account_id="acct_perm")
    stripe_api.get("/v1/balance").mock(return_value=stripe_error(403))
    response = await client.get("/v1/vendor/payments/balance", headers=vendor_user.headers)
    assert response.status_code == 409
    assert response.json()["code"] == "stripe_permission_denied"


@pytest.mark.parametrize(
    "body",
    [
        {"interval": "hourly"},
        {"interval": "weekly"},
        {"interval": "weekly", "weekly_anchor": "someday"},
        {"interval": "monthly"},
        {"interval": "monthly", "monthly_anchor": 32},
        {"interval": "daily", "weekly_anchor": "friday"},
        {"interval": "daily", "monthly_anchor": 3},
        {"interval": "daily", "delay_days": 0},
        {"interval": "daily", "delay_days": 45},
        {"interval": "daily", "delay_days": "max"},
    ],
)
async def test_invalid_payout_schedules_never_reach_stripe(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
    body: dict[str, object],
) -> None:
    await make_vendor(session, user=vendor_user.user, active=True, stripe_account_id="acct_ps")
    update = stripe_api.post("/v1/accounts/acct_ps")
    response = await client.put(
        "/v1/vendor/payments/payout-schedule", json=body, headers=vendor_user.headers
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert not update.called


async def test_payout_schedule_needs_onboarding(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    await make_vendor(session, user=vendor_user.user, stripe_account_id="acct_new")
    update = stripe_api.post("/v1/accounts/acct_new")
    response = await client.put(
        "/v1/vendor/payments/payout-schedule",
        json={"interval": "daily"},
        headers=vendor_user.headers,
    )
    assert response.status_code == 409
    assert response.json()["code"] == "vendor_not_onboarded"
    assert not update.called


async def test_monthly_minimum_schedule_params(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    await make_vendor(session, user=vendor_user.user, active=True, stripe_account_id="acct_mo")
    update = stripe_api.post("/v1/accounts/acct_mo").mock(
        return_value=ok(
            active_account(
                "acct_mo", schedule={"delay_days": 2, "interval": "monthly", "monthly_anchor": 31}
            )
        )
    )
    response = await client.put(
        "/v1/vendor/payments/payout-schedule",
        json={"interval": "monthly", "monthly_anchor": 31, "delay_days": "minimum"},
        headers=vendor_user.headers,
    )
    assert response.status_code == 200
    assert form(update.calls.last.request) == {
        "settings[payouts][schedule][interval]": "monthly",
        "settings[payouts][schedule][monthly_anchor]": "31",
        "settings[payouts][schedule][delay_days]": "minimum",
    }
