"""`/v1/admin/vendors`: list by status, overrides and suspension."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.vendors.models import Vendor, VendorStatus
from tests.conftest import AuthUser
from tests.fixtures.accounts import make_vendor


async def test_list_vendors_filtered_by_status_and_paginated(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser
) -> None:
    active = [await make_vendor(session, active=True) for _ in range(3)]
    await make_vendor(session, stripe_account_id="acct_onb_admin")
    response = await client.get(
        "/v1/admin/vendors", params={"status": "active", "limit": 2}, headers=admin.headers
    )
    assert response.status_code == 200
    first = response.json()
    assert len(first["items"]) == 2
    assert {item["status"] for item in first["items"]} == {"active"}
    second = (
        await client.get(
            "/v1/admin/vendors",
            params={"status": "active", "limit": 2, "cursor": first["next_cursor"]},
            headers=admin.headers,
        )
    ).json()
    assert second["next_cursor"] is None
    ids = {item["id"] for item in first["items"] + second["items"]}
    assert ids == {str(v.id) for v in active}


async def test_patch_overrides_and_suspension(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser
) -> None:
    vendor = await make_vendor(session, active=True)
    url = f"/v1/admin/vendors/{vendor.id}"
    response = await client.patch(
        url,
        json={"fee_bps_override": 500, "charge_type_override": "separate", "suspended": True},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["fee_bps_override"] == 500
    assert body["charge_type_override"] == "separate"
    assert body["suspended_at"] is not None
    assert body["can_accept_payments"] is False
    assert body["status"] == "active"  # suspension is platform policy, not Stripe state

    # Only sent fields change; null clears an override.
    cleared = await client.patch(
        url, json={"fee_bps_override": None, "suspended": False}, headers=admin.headers
    )
    body = cleared.json()
    assert body["fee_bps_override"] is None
    assert body["charge_type_override"] == "separate"
    assert body["suspended_at"] is None
    assert body["can_accept_payments"] is True
    row = await session.get(Vendor, vendor.id, populate_existing=True)
    assert row is not None
    assert row.status is VendorStatus.active


async def test_patch_validates_and_404s(
    client: httpx.AsyncClient, session: AsyncSession, admin: AuthUser
) -> None:
    vendor = await make_vendor(session)
    too_much = await client.patch(
        f"/v1/admin/vendors/{vendor.id}", json={"fee_bps_override": 10001}, headers=admin.headers
    )
    assert too_much.status_code == 422
    missing = await client.patch(
        "/v1/admin/vendors/00000000-0000-4000-8000-000000000000",
        json={"suspended": True},
        headers=admin.headers,
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "vendor_not_found"


async def test_vendors_cannot_use_admin_routes(
    client: httpx.AsyncClient, vendor_user: AuthUser
) -> None:
    response = await client.get("/v1/admin/vendors", headers=vendor_user.headers)
    assert response.status_code == 403
