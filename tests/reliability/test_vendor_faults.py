"""Stripe failing during vendor setup (account create, account link) and when an account is read
back (`refresh-status`, and the reconcile job)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace_api.integrations.stripe import StripeGateway
from marketplace_api.reconcile.service import reconcile
from marketplace_api.vendors.models import Vendor, VendorStatus
from tests.conftest import AuthUser
from tests.fixtures.accounts import (
    account,
    active_account,
    make_vendor,
)
from tests.fixtures.stripe import form, ok
from tests.reliability.faults import (
    FAULTS,
    Fault,
    assert_problem,
    bodies,
    flaky,
    keys,
    stable_id,
    successes,
)
from tests.webhooks.reconcile_mocks import mock_nothing_listed

LINK = {
    "object": "account_link",
    "created": 1793000000,
    "expires_at": 1793000300,
    "url": "https://connect.stripe.com/setup/e/acct_1/Ab12Cd34",
}


def account_handler(request: httpx.Request) -> httpx.Response:
    """POST /v1/accounts: the same account for the same key, as Stripe replays it."""
    return ok(account(stable_id("acct", request), vendor_id=form(request)["metadata[vendor_id]"]))


def link_handler(_request: httpx.Request) -> httpx.Response:
    return ok(LINK)


async def stored(session: AsyncSession, vendor_id: uuid.UUID) -> Vendor:
    vendor = await session.get(Vendor, vendor_id, populate_existing=True)
    assert vendor is not None
    return vendor


@pytest.mark.parametrize("fault", FAULTS)
async def test_account_create_fault_stores_nothing_and_the_retry_creates_one_account(
    fault: Fault,
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session, user=vendor_user.user)
    create = stripe_api.post("/v1/accounts").mock(side_effect=flaky(fault, account_handler))
    link = stripe_api.post("/v1/account_links").mock(side_effect=link_handler)

    failed = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)

    assert_problem(failed, fault)
    row = await stored(session, vendor.id)
    assert row.stripe_account_id is None  # retry path: setup again, same key
    assert link.call_count == 0

    retried = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)

    assert retried.status_code == 200, retried.text
    assert keys(create) == [f"vendor:{vendor.id}:account"] * 2
    first, second = bodies(create)
    assert first == second
    assert successes(create) == 1
    row = await stored(session, vendor.id)
    assert row.stripe_account_id == create.calls.last.response.json()["id"]
    assert retried.json()["stripe_account_id"] == row.stripe_account_id
    assert row.status is VendorStatus.onboarding


@pytest.mark.parametrize("fault", FAULTS)
async def test_account_link_fault_keeps_the_account_and_the_retry_only_asks_for_a_link(
    fault: Fault,
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    """Links are single-use and expire within minutes, so each request for one is deliberately a
    new Stripe request (`vendor:<id>:account_link:<nonce>`; the SDK's own retries of one request
    share its key). What must not repeat is the account: it was stored before the link failed."""
    vendor = await make_vendor(session, user=vendor_user.user)
    create = stripe_api.post("/v1/accounts").mock(side_effect=account_handler)
    link = stripe_api.post("/v1/account_links").mock(side_effect=flaky(fault, link_handler))

    failed = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)

    assert_problem(failed, fault)
    row = await stored(session, vendor.id)
    account_id = row.stripe_account_id
    assert account_id == create.calls.last.response.json()["id"]

    retried = await client.post("/v1/vendor/payments/setup", headers=vendor_user.headers)

    assert retried.status_code == 200, retried.text
    assert retried.json()["onboarding_url"] == LINK["url"]
    assert create.call_count == 1  # the account is never asked for twice
    assert [form(c.request)["account"] for c in link.calls] == [account_id] * 2
    assert all(k.startswith(f"vendor:{vendor.id}:account_link:") for k in keys(link))
    assert (await stored(session, vendor.id)).stripe_account_id == account_id


@pytest.mark.parametrize("fault", FAULTS)
async def test_refresh_status_fault_changes_nothing_and_the_retry_applies_the_account(
    fault: Fault,
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session, user=vendor_user.user, stripe_account_id="acct_flaky")
    route = stripe_api.get("/v1/accounts/acct_flaky").mock(
        side_effect=flaky(fault, lambda _: ok(active_account("acct_flaky", vendor_id=vendor.id)))
    )

    failed = await client.post("/v1/vendor/payments/refresh-status", headers=vendor_user.headers)

    assert_problem(failed, fault)
    row = await stored(session, vendor.id)
    assert (row.status, row.charges_enabled) == (VendorStatus.onboarding, False)

    retried = await client.post("/v1/vendor/payments/refresh-status", headers=vendor_user.headers)

    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "active"
    assert route.call_count == 2
    row = await stored(session, vendor.id)
    assert (row.status, row.charges_enabled) == (VendorStatus.active, True)


@pytest.mark.parametrize("fault", FAULTS)
async def test_reconcile_reports_an_account_fault_and_the_next_run_applies_it(
    fault: Fault,
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(session, stripe_account_id="acct_recon")
    route = stripe_api.get("/v1/accounts/acct_recon").mock(
        side_effect=flaky(fault, lambda _: ok(active_account("acct_recon", vendor_id=vendor.id)))
    )
    mock_nothing_listed(stripe_api)  # the vendor's payouts and disputes
    now = datetime.now(UTC)

    first = await reconcile(sessions, gateway, now=now)

    assert first.vendors.checked == 1
    assert first.vendors.changed == []
    assert len(first.errors) == 1
    assert first.errors[0].startswith(f"vendor {vendor.id}: {fault.code}")
    assert (await stored(session, vendor.id)).status is VendorStatus.onboarding

    second = await reconcile(sessions, gateway, now=now)

    assert second.errors == []
    assert second.vendors.changed == [f"{vendor.id}: onboarding -> active"]
    assert route.call_count == 2
    assert (await stored(session, vendor.id)).status is VendorStatus.active


# --- the other account calls: dashboard link, balance, payout schedule -------------------------

ACCOUNT_READS_AND_WRITES = [
    pytest.param(
        "POST",
        "/v1/vendor/payments/dashboard-link",
        None,
        "post",
        "/login_links",
        id="dashboard-link",
    ),
    pytest.param("GET", "/v1/vendor/payments/balance", None, "get", "/v1/balance", id="balance"),
    pytest.param(
        "PUT",
        "/v1/vendor/payments/payout-schedule",
        {"interval": "weekly", "weekly_anchor": "friday"},
        "post",
        "",
        id="payout-schedule",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "stripe_method", "stripe_path"), ACCOUNT_READS_AND_WRITES
)
@pytest.mark.parametrize("fault", FAULTS)
async def test_other_account_calls_answer_503_and_change_nothing(
    fault: Fault,
    method: str,
    path: str,
    body: dict[str, str] | None,
    stripe_method: str,
    stripe_path: str,
    client: httpx.AsyncClient,
    session: AsyncSession,
    vendor_user: AuthUser,
    stripe_api: respx.MockRouter,
) -> None:
    vendor = await make_vendor(
        session, user=vendor_user.user, active=True, stripe_account_id="acct_other"
    )
    schedule_before = (await stored(session, vendor.id)).payout_schedule
    url = (
        stripe_path
        if stripe_path.startswith("/v1/balance")
        else f"/v1/accounts/acct_other{stripe_path}"
    )
    route = getattr(stripe_api, stripe_method)(url).mock(side_effect=lambda r: fault.fail(r))

    response = await client.request(method, path, json=body, headers=vendor_user.headers)

    assert_problem(response, fault)
    assert route.call_count == 1
    assert (await stored(session, vendor.id)).payout_schedule == schedule_before
