"""A vendor's Stripe lifecycle against the stateful Stripe simulator instead of canned answers:
setup, onboarding on the hosted page, refresh, dashboard link, payout schedule (accepted and
refused by Stripe's own rule) and balance. Stripe is still mocked at the HTTP level (respx), and
the requests sent are asserted as before."""

from __future__ import annotations

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.stripe_simulator import StripeSimulator
from marketplace_api.vendors.models import Vendor, VendorStatus
from tests.conftest import AuthUser
from tests.fixtures.accounts import make_vendor
from tests.fixtures.stripe import form


@pytest.fixture
def sim(stripe_api: respx.MockRouter) -> StripeSimulator:
    simulator = StripeSimulator(seed=11, public_url="http://testserver")
    stripe_api.route().mock(side_effect=simulator.handle)
    return simulator


def _last(stripe_api: respx.MockRouter, method: str, path: str) -> httpx.Request:
    calls = [
        c.request
        for c in stripe_api.calls
        if (c.request.method, c.request.url.path) == (method, path)
    ]
    assert calls, f"{method} {path} was not called"
    return calls[-1]


async def _onboarded(
    client: httpx.AsyncClient, session: AsyncSession, vendor_user: AuthUser, sim: StripeSimulator
) -> tuple[Vendor, str]:
    vendor = await make_vendor(session, user=vendor_user.user)
    setup = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)
    assert setup.status_code == 200, setup.text
    account_id = setup.json()["stripe_account_id"]
    sim.complete_onboarding(account_id)
    return vendor, account_id


async def test_vendor_onboards_and_refresh_stores_the_active_account(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    sim: StripeSimulator,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session, user=vendor_user.user)
    setup = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)
    assert setup.status_code == 200, setup.text
    account_id = setup.json()["stripe_account_id"]
    assert sim.state.accounts[account_id]["metadata"]["vendor_id"] == str(vendor.id)
    assert setup.json()["onboarding_url"].startswith("http://testserver/simulator/onboarding/")
    assert setup.json()["status"] == "onboarding"

    sim.complete_onboarding(account_id)  # the vendor finished Stripe's hosted onboarding
    response = await client.post("/v1/vendor/payments/refresh-status", headers=vendor_user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["can_accept_payments"], body["needs_onboarding"]) == (
        "active",
        True,
        False,
    )
    assert "Stripe-Account" not in _last(stripe_api, "GET", f"/v1/accounts/{account_id}").headers
    row = await session.get(Vendor, vendor.id, populate_existing=True)
    assert row is not None
    assert row.status is VendorStatus.active


async def test_dashboard_link_only_once_onboarded(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    sim: StripeSimulator,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session, user=vendor_user.user)
    setup = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)
    account_id = setup.json()["stripe_account_id"]
    refused = await client.post("/v1/vendor/payments/dashboard-link", headers=vendor_user.headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "vendor_not_onboarded"
    assert not [c for c in stripe_api.calls if c.request.url.path.endswith("/login_links")]

    sim.complete_onboarding(account_id)
    await client.post("/v1/vendor/payments/refresh-status", headers=vendor_user.headers)
    response = await client.post("/v1/vendor/payments/dashboard-link", headers=vendor_user.headers)
    assert response.status_code == 200
    assert response.json() == {"url": f"http://testserver/simulator/dashboard/{account_id}"}
    sent = _last(stripe_api, "POST", f"/v1/accounts/{account_id}/login_links")
    assert sent.content == b""
    assert sent.headers["Idempotency-Key"].startswith(f"vendor:{vendor.id}:login_link:")


async def test_weekly_payout_schedule_is_set_on_stripe_and_stored(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    sim: StripeSimulator,
    stripe_api: respx.MockRouter,
) -> None:
    vendor, account_id = await _onboarded(client, session, vendor_user, sim)
    await client.post("/v1/vendor/payments/refresh-status", headers=vendor_user.headers)
    response = await client.put(
        "/v1/vendor/payments/payout-schedule",
        json={"interval": "weekly", "weekly_anchor": "friday", "delay_days": 7},
        headers=vendor_user.headers,
    )
    assert response.status_code == 200, response.text
    schedule = {
        "interval": "weekly",
        "delay_days": 7,
        "weekly_anchor": "friday",
        "weekly_payout_days": ["friday"],
    }
    assert response.json()["payout_schedule"] == schedule
    assert sim.state.accounts[account_id]["settings"]["payouts"]["schedule"] == schedule
    sent = _last(stripe_api, "POST", f"/v1/accounts/{account_id}")
    assert form(sent) == {
        "settings[payouts][schedule][interval]": "weekly",
        "settings[payouts][schedule][weekly_anchor]": "friday",
        "settings[payouts][schedule][delay_days]": "7",
    }
    assert sent.headers["Idempotency-Key"].startswith(f"vendor:{vendor.id}:payout_schedule:")


async def test_a_delay_below_the_countrys_minimum_is_refused_by_stripe_as_422(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    sim: StripeSimulator,
) -> None:
    vendor, account_id = await _onboarded(client, session, vendor_user, sim)
    await client.post("/v1/vendor/payments/refresh-status", headers=vendor_user.headers)
    before = dict(sim.state.accounts[account_id]["settings"]["payouts"]["schedule"])
    response = await client.put(
        "/v1/vendor/payments/payout-schedule",
        json={"interval": "daily", "delay_days": 1},  # US accounts: at least 2
        headers=vendor_user.headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "payout_schedule_rejected"
    assert sim.state.accounts[account_id]["settings"]["payouts"]["schedule"] == before
    row = await session.get(Vendor, vendor.id, populate_existing=True)
    assert row is not None
    assert row.payout_schedule == before  # what refresh stored; the refusal changed nothing


async def test_balance_is_the_connected_accounts_read_with_its_header(
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    sim: StripeSimulator,
    stripe_api: respx.MockRouter,
) -> None:
    _, account_id = await _onboarded(client, session, vendor_user, sim)
    await client.post("/v1/vendor/payments/refresh-status", headers=vendor_user.headers)
    # A destination charge of 50.00 with a 5.00 fee: 45.00 pending on the vendor's account.
    created = sim.handle(
        httpx.Request(
            "POST",
            "https://api.stripe.com/v1/payment_intents",
            headers={"Authorization": "Bearer sk_test_x"},
            data={"amount": "5000", "currency": "usd", "application_fee_amount": "500",
                  "transfer_data[destination]": account_id},
        )
    ).json()  # fmt: skip
    sim.confirm_payment_intent(created["id"], "pm_card_visa")
    response = await client.get("/v1/vendor/payments/balance", headers=vendor_user.headers)
    assert response.status_code == 200
    assert response.json() == {
        "available": [{"amount": 0, "currency": "usd"}],
        "pending": [{"amount": 4500, "currency": "usd"}],
    }
    assert _last(stripe_api, "GET", "/v1/balance").headers["Stripe-Account"] == account_id
