"""The stored account state: snapshots, out-of-order events, capabilities, deauthorization,
and the webhook handlers that drive them (called directly with an EventContext)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.vendors import events, service
from marketplace_api.vendors.models import Vendor, VendorStatus
from marketplace_api.webhooks.binding import Mismatch
from marketplace_api.webhooks.dispatch import HANDLER_MODULES, EventContext, load_handlers
from tests.fixtures.accounts import (
    NO_REQUIREMENTS,
    account,
    active_account,
    as_account,
    make_vendor,
    ts,
)
from tests.fixtures.stripe import event, stripe_id

T0 = 1_793_000_000


def context(evt: dict[str, Any]) -> EventContext:
    data = evt["data"]
    return EventContext(
        id=evt["id"],
        type=evt["type"],
        account=evt.get("account"),
        created=datetime.fromtimestamp(evt["created"], UTC),
        livemode=evt["livemode"],
        object=data["object"],
        previous_attributes=data.get("previous_attributes"),
    )


def capability(acct: str, name: str, status: str) -> dict[str, Any]:
    return {
        "id": name,
        "object": "capability",
        "account": acct,
        "requested": True,
        "requested_at": T0,
        "requirements": {"currently_due": [], "disabled_reason": None, "past_due": []},
        "status": status,
    }


async def test_snapshot_found_by_metadata_adopts_the_account(session: AsyncSession) -> None:
    # The create answer was never stored (crash between Stripe and our commit).
    vendor = await make_vendor(session)
    acct = active_account("acct_adopted", vendor_id=vendor.id)
    updated = await service.apply_stripe_account(session, as_account(acct), observed_at=ts(T0))
    assert updated is not None
    assert updated.id == vendor.id
    assert updated.stripe_account_id == "acct_adopted"
    assert updated.status is VendorStatus.active
    assert updated.can_accept_payments
    assert updated.stripe_account_synced_at == ts(T0)


async def test_snapshot_found_by_account_id_without_metadata(session: AsyncSession) -> None:
    vendor = await make_vendor(session, stripe_account_id="acct_known")
    updated = await service.apply_stripe_account(
        session, as_account(account("acct_known", details_submitted=True)), observed_at=ts(T0)
    )
    assert updated is not None
    assert updated.id == vendor.id
    assert updated.status is VendorStatus.restricted
    assert updated.details_submitted


async def test_unknown_account_matches_no_vendor(session: AsyncSession) -> None:
    await make_vendor(session, stripe_account_id="acct_mine")
    assert (
        await service.apply_stripe_account(session, as_account(account()), observed_at=ts(T0))
        is None
    )


async def test_metadata_of_a_vendor_with_another_account_does_not_hijack_it(
    session: AsyncSession,
) -> None:
    vendor = await make_vendor(session, stripe_account_id="acct_stored")
    orphan = active_account("acct_orphan", vendor_id=vendor.id)
    # Our vendor's id on another account is a disagreement to show the operator, not adopted.
    with pytest.raises(Mismatch):
        await service.apply_stripe_account(session, as_account(orphan), observed_at=ts(T0))
    await session.refresh(vendor)
    assert vendor.stripe_account_id == "acct_stored"
    assert vendor.status is VendorStatus.onboarding


async def test_older_snapshot_never_overwrites_a_newer_one(session: AsyncSession) -> None:
    vendor = await make_vendor(session, stripe_account_id="acct_order")
    await service.apply_stripe_account(
        session, as_account(active_account("acct_order")), observed_at=ts(T0 + 10)
    )
    stale = await service.apply_stripe_account(
        session, as_account(account("acct_order")), observed_at=ts(T0 + 5)
    )
    assert stale is not None
    assert stale.id == vendor.id
    assert stale.status is VendorStatus.active
    assert stale.stripe_account_synced_at == ts(T0 + 10)
    # A newer one applies.
    newer = await service.apply_stripe_account(
        session,
        as_account(
            account(
                "acct_order",
                details_submitted=True,
                requirements={**NO_REQUIREMENTS, "disabled_reason": "rejected.fraud"},
            )
        ),
        observed_at=ts(T0 + 20),
    )
    assert newer is not None
    assert newer.status is VendorStatus.rejected
    assert not newer.can_accept_payments


async def test_deauthorized_vendor_is_disabled_for_good(session: AsyncSession) -> None:
    vendor = await make_vendor(session, active=True, stripe_account_id="acct_gone")
    gone = await service.mark_deauthorized(session, "acct_gone", observed_at=ts(T0))
    assert gone is not None
    assert gone.id == vendor.id
    assert gone.status is VendorStatus.disabled
    assert gone.deauthorized_at == ts(T0)
    assert not gone.charges_enabled
    assert not gone.can_accept_payments
    # A later account snapshot (even newer) does not revive it.
    after = await service.apply_stripe_account(
        session, as_account(active_account("acct_gone")), observed_at=ts(T0 + 60)
    )
    assert after is not None
    assert after.status is VendorStatus.disabled
    # A repeated deauthorization keeps the first time.
    again = await service.mark_deauthorized(session, "acct_gone", observed_at=ts(T0 + 99))
    assert again is not None
    assert again.deauthorized_at == ts(T0)


async def test_mark_deauthorized_of_unknown_account(session: AsyncSession) -> None:
    assert await service.mark_deauthorized(session, "acct_nobody", observed_at=ts(T0)) is None


async def test_can_accept_payments_property_and_sql_clause_agree(session: AsyncSession) -> None:
    vendors = [
        await make_vendor(session, active=True),
        await make_vendor(session, active=True, suspended_at=ts(T0)),
        await make_vendor(session, active=True, deauthorized_at=ts(T0)),
        await make_vendor(session, active=True, charges_enabled=False),
        await make_vendor(session, stripe_account_id=stripe_id("acct")),
        await make_vendor(session),
    ]
    for v in vendors[3:4]:
        v.charges_enabled = False
    await session.commit()
    ids = [v.id for v in vendors]
    in_sql = set(
        (
            await session.scalars(
                select(Vendor.id).where(Vendor.id.in_(ids), Vendor.can_accept_payments_clause())
            )
        ).all()
    )
    assert in_sql == {v.id for v in vendors if v.can_accept_payments} == {vendors[0].id}


# --- webhook handlers ----------------------------------------------------------------------


def test_vendor_handlers_are_registered() -> None:
    assert "marketplace_api.vendors.events" in HANDLER_MODULES
    handlers = load_handlers()
    assert handlers["account.updated"] is events.on_account_updated
    assert handlers["capability.updated"] is events.on_capability_updated
    assert handlers["account.application.deauthorized"] is events.on_account_deauthorized


async def test_account_updated_event_activates_vendor(session: AsyncSession) -> None:
    vendor = await make_vendor(session, stripe_account_id="acct_evt")
    evt = event(
        "account.updated",
        active_account("acct_evt", vendor_id=vendor.id),
        account="acct_evt",
        created=T0,
        previous_attributes={"charges_enabled": False},
    )
    await events.on_account_updated(session, context(evt))
    await session.refresh(vendor)
    assert vendor.status is VendorStatus.active
    assert vendor.charges_enabled
    assert vendor.payouts_enabled
    assert vendor.capabilities == {"card_payments": "active", "transfers": "active"}
    assert vendor.stripe_account_synced_at == ts(T0)


async def test_account_updated_events_out_of_order(session: AsyncSession) -> None:
    vendor = await make_vendor(session, stripe_account_id="acct_ooo")
    newer = event("account.updated", active_account("acct_ooo"), account="acct_ooo", created=T0 + 9)
    older = event("account.updated", account("acct_ooo"), account="acct_ooo", created=T0 + 1)
    await events.on_account_updated(session, context(newer))
    await events.on_account_updated(session, context(older))
    await session.refresh(vendor)
    assert vendor.status is VendorStatus.active
    assert vendor.stripe_account_synced_at == ts(T0 + 9)


async def test_account_updated_for_unknown_account_is_ignored(session: AsyncSession) -> None:
    evt = event("account.updated", active_account(), account=stripe_id("acct"), created=T0)
    await events.on_account_updated(session, context(evt))  # no exception, nothing to retry


async def test_capability_lost_downgrades_active_vendor(session: AsyncSession) -> None:
    vendor = await make_vendor(session, stripe_account_id="acct_cap")
    await service.apply_stripe_account(
        session, as_account(active_account("acct_cap")), observed_at=ts(T0)
    )
    evt = event(
        "capability.updated",
        capability("acct_cap", "card_payments", "inactive"),
        account="acct_cap",
        created=T0 + 5,
    )
    await events.on_capability_updated(session, context(evt))
    await session.refresh(vendor)
    assert vendor.status is VendorStatus.restricted
    assert not vendor.charges_enabled
    assert vendor.capabilities == {"card_payments": "inactive", "transfers": "active"}
    assert not vendor.can_accept_payments
    # Not a full snapshot: the synced time is unchanged, so the account.updated that Stripe sends
    # with it (even with the same or a slightly older `created`) still applies.
    assert vendor.stripe_account_synced_at == ts(T0)


async def test_transfers_capability_lost_downgrades_but_keeps_charges(
    session: AsyncSession,
) -> None:
    vendor = await make_vendor(session, stripe_account_id="acct_tr")
    await service.apply_stripe_account(
        session, as_account(active_account("acct_tr")), observed_at=ts(T0)
    )
    evt = event(
        "capability.updated",
        capability("acct_tr", "transfers", "pending"),
        account="acct_tr",
        created=T0 + 5,
    )
    await events.on_capability_updated(session, context(evt))
    await session.refresh(vendor)
    assert vendor.status is VendorStatus.restricted
    assert vendor.charges_enabled
    assert vendor.capabilities["transfers"] == "pending"


async def test_capability_active_does_not_upgrade_alone(session: AsyncSession) -> None:
    vendor = await make_vendor(session, stripe_account_id="acct_up")
    await service.apply_stripe_account(
        session, as_account(account("acct_up", details_submitted=True)), observed_at=ts(T0)
    )
    evt = event(
        "capability.updated",
        capability("acct_up", "card_payments", "active"),
        account="acct_up",
        created=T0 + 5,
    )
    await events.on_capability_updated(session, context(evt))
    await session.refresh(vendor)
    assert vendor.status is VendorStatus.restricted
    assert vendor.capabilities["card_payments"] == "active"


async def test_capability_older_than_snapshot_is_ignored(session: AsyncSession) -> None:
    vendor = await make_vendor(session, stripe_account_id="acct_old")
    await service.apply_stripe_account(
        session, as_account(active_account("acct_old")), observed_at=ts(T0)
    )
    evt = event(
        "capability.updated",
        capability("acct_old", "card_payments", "inactive"),
        account="acct_old",
        created=T0 - 5,
    )
    await events.on_capability_updated(session, context(evt))
    await session.refresh(vendor)
    assert vendor.status is VendorStatus.active
    assert vendor.capabilities["card_payments"] == "active"


async def test_deauthorized_event_disables_vendor(session: AsyncSession) -> None:
    vendor = await make_vendor(session, active=True, stripe_account_id="acct_deauth")
    app = {"id": "ca_123", "object": "application", "name": "marketplace"}
    evt = event("account.application.deauthorized", app, account="acct_deauth", created=T0)
    await events.on_account_deauthorized(session, context(evt))
    await session.refresh(vendor)
    assert vendor.status is VendorStatus.disabled
    assert vendor.deauthorized_at == ts(T0)
    assert not vendor.can_accept_payments
