"""Vendors: the profile, the Stripe account state we keep, platform policy and the admin view.

The Stripe account state only changes through `apply_stripe_account` (every snapshot of the
account: the create answer, `account.updated`, a refresh, the reconcile job), `apply_capability`
(`capability.updated`) and `mark_deauthorized`. Each is one conditional UPDATE, so concurrent and
out-of-order snapshots are safe: a snapshot older than the stored one (`stripe_account_synced_at`)
changes nothing, and nothing changes a deauthorized account any more.

Stripe calls (onboarding, links, balance, payout schedule) live in `vendors.onboarding`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api.config import ChargeType, Settings
from marketplace_api.integrations.stripe.objects import Account
from marketplace_api.money import UnsupportedCurrency as UnknownCurrency
from marketplace_api.money import get_currency
from marketplace_api.pagination import keyset_page, split_page
from marketplace_api.reads import read_from
from marketplace_api.vendors.exceptions import (
    UnsupportedCurrency,
    VendorCountryLocked,
    VendorNotFound,
    VendorProfileNotFound,
    VendorProfileRequired,
)
from marketplace_api.vendors.models import Vendor, VendorStatus
from marketplace_api.vendors.queries import get_vendor_of_user
from marketplace_api.vendors.schemas import (
    PaymentsConfigRead,
    RequirementsRead,
    VendorAdminPage,
    VendorAdminRead,
    VendorAdminUpdate,
    VendorProfileUpdate,
)
from marketplace_api.vendors.status import derive_account_state
from marketplace_api.webhooks.binding import Mismatch, Source, account_of, metadata_id, verify

logger = logging.getLogger(__name__)

PAYMENT_CAPABILITIES = frozenset({"card_payments", "transfers"})


# --- profile ----------------------------------------------------------------------------------


async def get_profile(session: AsyncSession, user_id: uuid.UUID) -> Vendor:
    vendor = await get_vendor_of_user(session, user_id)
    if vendor is None:
        raise VendorProfileNotFound("Create it with PUT /v1/vendor/profile.")
    return vendor


async def require_vendor(session: AsyncSession, user_id: uuid.UUID) -> Vendor:
    """The vendor of a signed-in vendor user, for actions that need a profile first (409)."""
    vendor = await get_vendor_of_user(session, user_id)
    if vendor is None:
        raise VendorProfileRequired()
    return vendor


def _check_currency(code: str) -> None:
    try:
        get_currency(code)
    except UnknownCurrency as exc:
        raise UnsupportedCurrency(str(exc), field="default_currency") from exc


async def upsert_profile(
    session: AsyncSession, user_id: uuid.UUID, data: VendorProfileUpdate
) -> Vendor:
    """Create the vendor on first call, replace the profile afterwards.

    The country is the Stripe account's country, which Stripe never changes: once the account
    exists a different country is refused (409 `vendor_country_locked`).
    """
    _check_currency(data.default_currency)
    values = {
        "display_name": data.display_name,
        "description": data.description,
        "country": data.country,
        "default_currency": data.default_currency,
    }
    # Concurrent first calls: one INSERT wins, the other falls through to the locked UPDATE.
    created = await session.scalar(
        insert(Vendor)
        .values(id=uuid.uuid4(), user_id=user_id, **values)
        .on_conflict_do_nothing(index_elements=[Vendor.user_id])
        .returning(Vendor.id)
    )
    if created is None:
        vendor = await session.scalar(
            select(Vendor).where(Vendor.user_id == user_id).with_for_update()
        )
        if vendor is None:  # the conflicting row exists and vendors are never deleted
            raise VendorProfileNotFound()
        if vendor.stripe_account_id is not None and vendor.country != data.country:
            country = vendor.country
            await session.rollback()
            raise VendorCountryLocked(
                f"The Stripe account was created for {country}; open a new vendor "
                "account to sell from another country."
            )
        await session.execute(update(Vendor).where(Vendor.id == vendor.id).values(**values))
        vendor_id = vendor.id
    else:
        vendor_id = created
    await session.commit()
    return await _reload(session, vendor_id)


async def _reload(session: AsyncSession, vendor_id: uuid.UUID) -> Vendor:
    vendor = await session.get(Vendor, vendor_id, populate_existing=True)
    if vendor is None:
        raise VendorNotFound()
    return vendor


async def get_public_vendor(session: AsyncSession, vendor_id: uuid.UUID) -> Vendor:
    """A vendor the storefront shows: one that can take payments (others answer 404)."""
    vendor = await session.scalar(
        select(Vendor).where(Vendor.id == vendor_id, Vendor.can_accept_payments_clause())
    )
    if vendor is None:
        raise VendorNotFound()
    return vendor


# --- platform policy --------------------------------------------------------------------------


def effective_fee_bps(vendor: Vendor, settings: Settings) -> int:
    return (
        vendor.fee_bps_override
        if vendor.fee_bps_override is not None
        else settings.platform_fee_bps
    )


def effective_charge_type(vendor: Vendor, settings: Settings) -> ChargeType:
    return vendor.charge_type_override or settings.default_charge_type


def needs_onboarding(vendor: Vendor) -> bool:
    if vendor.status in (VendorStatus.rejected, VendorStatus.disabled):
        return False  # nothing the vendor can submit would help
    return (
        vendor.stripe_account_id is None
        or not vendor.details_submitted
        or bool(vendor.requirements_currently_due)
        or bool(vendor.requirements_past_due)
    )


def payments_config(vendor: Vendor, settings: Settings) -> PaymentsConfigRead:
    return read_from(
        PaymentsConfigRead,
        vendor,
        capabilities=dict(vendor.capabilities or {}),
        requirements=RequirementsRead(
            currently_due=list(vendor.requirements_currently_due or []),
            past_due=list(vendor.requirements_past_due or []),
            disabled_reason=vendor.requirements_disabled_reason,
        ),
        needs_onboarding=needs_onboarding(vendor),
        suspended=vendor.suspended_at is not None,
        platform_fee_bps=effective_fee_bps(vendor, settings),
        charge_type=effective_charge_type(vendor, settings),
        synced_at=vendor.stripe_account_synced_at,
    )


# --- Stripe account state (the vendor state machine) ------------------------------------------


def _metadata_vendor_id(account: Account) -> uuid.UUID | None:
    return metadata_id(account.metadata, "vendor_id")


async def _find_vendor_for_account(session: AsyncSession, account: Account) -> Vendor | None:
    """Our vendor for an account: by the `vendor_id` we put in its metadata, else by account id.

    Metadata first, so an account whose creation answer we never stored (crash between Stripe and
    our commit) is still adopted by its vendor. A vendor that already has ANOTHER account is not
    matched through metadata: that account would be an orphan (see `onboarding.setup_payments`).
    """
    account_id = account.id
    vendor_id = _metadata_vendor_id(account)
    if vendor_id is not None:
        vendor = await session.get(Vendor, vendor_id)
        if vendor is not None and vendor.stripe_account_id in (None, account_id):
            return vendor
        if vendor is not None:
            by_id = await session.scalar(
                select(Vendor).where(Vendor.stripe_account_id == account_id)
            )
            if by_id is None:
                # Our vendor's id on an account that is not the vendor's: never adopted.
                raise Mismatch(
                    f"vendor {vendor.id}", "account", vendor.stripe_account_id, account_id
                )
            return by_id
    return await session.scalar(select(Vendor).where(Vendor.stripe_account_id == account_id))


async def apply_stripe_account(
    session: AsyncSession,
    account: Account,
    *,
    observed_at: datetime,
    source: Source | None = None,
) -> Vendor | None:
    """Store what a Stripe account snapshot says (status derived by `status.derive_account_state`).

    `observed_at` is when the snapshot was true (the event's `created`, or when we asked Stripe).
    A snapshot older than the stored one changes nothing, and neither does anything after a
    deauthorization. Does not commit. Returns None when no vendor matches the account.
    """
    vendor = await _find_vendor_for_account(session, account)
    if vendor is None:
        return None
    # An account event comes from that account (`event.account`); metadata alone never binds.
    verify(
        f"vendor {vendor.id}",
        account,
        ids=[vendor.stripe_account_id],
        account=account_of(source),
        expected_account=account.id,
    )
    state = derive_account_state(account)
    updated = await session.scalar(
        update(Vendor)
        .where(
            Vendor.id == vendor.id,
            Vendor.deauthorized_at.is_(None),
            or_(
                Vendor.stripe_account_id.is_(None),
                Vendor.stripe_account_id == state.stripe_account_id,
            ),
            _not_newer_than(observed_at),
        )
        .values(
            **state.columns(),
            stripe_account_synced_at=observed_at,
        )
        .returning(Vendor)
        .execution_options(populate_existing=True)
    )
    if updated is None:
        logger.info(
            "stale or inapplicable stripe account snapshot ignored",
            extra={"vendor_id": str(vendor.id), "stripe_account": state.stripe_account_id},
        )
        return await _reload(session, vendor.id)
    return updated


async def apply_capability(
    session: AsyncSession,
    stripe_account_id: str,
    *,
    capability: str,
    capability_status: str,
    observed_at: datetime,
) -> Vendor | None:
    """`capability.updated`: record the capability; only ever DOWNGRADE the status from it.

    A capability event does not carry the whole account (requirements, payouts), so it cannot
    prove a vendor is active: upgrades wait for the `account.updated` Stripe sends alongside (or a
    refresh). It can prove a vendor must stop taking payments: `card_payments` or `transfers` not
    active turns `active` into `restricted` (and `card_payments` clears `charges_enabled`). It does
    not advance `stripe_account_synced_at`, so it never hides a full snapshot. Does not commit.
    """
    vendor = await session.scalar(
        select(Vendor).where(Vendor.stripe_account_id == stripe_account_id)
    )
    if vendor is None:
        return None
    lost = capability in PAYMENT_CAPABILITIES and capability_status != "active"
    values: dict[str, Any] = {
        "capabilities": func.coalesce(Vendor.capabilities, func.jsonb_build_object()).op("||")(
            func.jsonb_build_object(capability, capability_status)
        )
    }
    if lost:
        values["status"] = _downgrade_status_expr()
        if capability == "card_payments":
            values["charges_enabled"] = False
    updated = await session.scalar(
        update(Vendor)
        .where(
            Vendor.id == vendor.id,
            Vendor.deauthorized_at.is_(None),
            _not_newer_than(observed_at),
        )
        .values(**values)
        .returning(Vendor)
        .execution_options(populate_existing=True)
    )
    return updated if updated is not None else await _reload(session, vendor.id)


def _not_newer_than(observed_at: datetime) -> Any:
    """The stored snapshot is not newer than one taken at `observed_at`, compared at whole
    seconds: Stripe's event `created` has whole seconds while a refresh or reconcile stores the
    moment it asked with microseconds, so an event of that same second (possibly newer) must
    still be applied. Two views of one second are ambiguous; the later-arriving one wins, and
    the next refresh, event or reconcile corrects it if it was the older."""
    return or_(
        Vendor.stripe_account_synced_at.is_(None),
        func.date_trunc("second", Vendor.stripe_account_synced_at)
        <= observed_at.replace(microsecond=0),
    )


def _downgrade_status_expr() -> Any:
    return case(
        (Vendor.status == VendorStatus.active, VendorStatus.restricted.value),
        else_=Vendor.status,
    )


async def mark_deauthorized(
    session: AsyncSession, stripe_account_id: str, *, observed_at: datetime
) -> Vendor | None:
    """`account.application.deauthorized`: the account left the platform; `disabled` for good.

    Applies whatever the event order (a deauthorization is final) and keeps the first time seen.
    Does not commit. Returns None when no vendor has this account.
    """
    return await session.scalar(
        update(Vendor)
        .where(Vendor.stripe_account_id == stripe_account_id)
        .values(
            status=VendorStatus.disabled,
            charges_enabled=False,
            payouts_enabled=False,
            deauthorized_at=func.coalesce(Vendor.deauthorized_at, observed_at),
            stripe_account_synced_at=func.greatest(
                func.coalesce(Vendor.stripe_account_synced_at, observed_at), observed_at
            ),
        )
        .returning(Vendor)
        .execution_options(populate_existing=True)
    )


# --- admin ------------------------------------------------------------------------------------


def _admin_read(vendor: Vendor) -> VendorAdminRead:
    return VendorAdminRead.model_validate(vendor)


async def list_vendors(
    session: AsyncSession, *, status: VendorStatus | None, limit: int, cursor: str | None
) -> VendorAdminPage:
    query = select(Vendor)
    if status is not None:
        query = query.where(Vendor.status == status)
    rows = (
        await session.scalars(
            keyset_page(
                query,
                created_at=Vendor.created_at,
                row_id=Vendor.id,
                cursor=cursor,
                limit=limit,
            )
        )
    ).all()
    items, next_cursor = split_page(rows, limit)
    return VendorAdminPage(items=[_admin_read(v) for v in items], next_cursor=next_cursor)


async def admin_update_vendor(
    session: AsyncSession, vendor_id: uuid.UUID, data: VendorAdminUpdate
) -> VendorAdminRead:
    """Fee and charge-type overrides (null clears them) and suspension. Only sent fields change."""
    values: dict[str, Any] = {}
    sent = data.model_fields_set
    if "fee_bps_override" in sent:
        values["fee_bps_override"] = data.fee_bps_override
    if "charge_type_override" in sent:
        values["charge_type_override"] = data.charge_type_override
    if "suspended" in sent and data.suspended is not None:
        values["suspended_at"] = (
            func.coalesce(Vendor.suspended_at, datetime.now(UTC)) if data.suspended else None
        )
    query = update(Vendor).where(Vendor.id == vendor_id)
    if values:
        vendor = await session.scalar(
            query.values(**values).returning(Vendor).execution_options(populate_existing=True)
        )
    else:
        vendor = await session.get(Vendor, vendor_id)
    if vendor is None:
        raise VendorNotFound()
    await session.commit()
    return _admin_read(vendor)
