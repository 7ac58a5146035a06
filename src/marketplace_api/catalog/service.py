"""Listings: a vendor's own catalogue, and the public storefront.

Listing status machine (one place: `ALLOWED_FROM`, enforced by `_set_status`'s conditional
UPDATE): draft <-> active, draft/active -> archived, archived -> draft. DELETE archives (a soft
delete: orders will reference listings, so rows are never removed); archived listings are
read-only until set back to draft.

Prices: positive, a multiple of the currency's step (10 for three-decimal currencies) and at least
Stripe's minimum charge for the currency, so a single unit is always payable.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace_api import money
from marketplace_api.catalog.exceptions import (
    InvalidAmount,
    InvalidListingTransition,
    ListingArchived,
    ListingNotFound,
    PriceFilterNeedsCurrency,
    UnsupportedCurrency,
)
from marketplace_api.catalog.models import Listing, ListingStatus
from marketplace_api.catalog.schemas import (
    ListingCreate,
    ListingPage,
    ListingPublic,
    ListingPublicPage,
    ListingRead,
    ListingUpdate,
)
from marketplace_api.pagination import decode_cursor, keyset_page, split_page
from marketplace_api.vendors import service as vendors
from marketplace_api.vendors.models import Vendor
from marketplace_api.vendors.queries import vendor_id_of

# to-status -> the statuses it may be reached from.
ALLOWED_FROM: dict[ListingStatus, frozenset[ListingStatus]] = {
    ListingStatus.draft: frozenset({ListingStatus.active, ListingStatus.archived}),
    ListingStatus.active: frozenset({ListingStatus.draft}),
    ListingStatus.archived: frozenset({ListingStatus.draft, ListingStatus.active}),
}


def validate_listing_price(amount: int, currency: str) -> None:
    """422 `unsupported_currency` / `invalid_amount`, each naming the field at fault."""
    try:
        money.get_currency(currency)
    except money.UnsupportedCurrency as exc:
        raise UnsupportedCurrency(
            str(exc),
            errors=[{"loc": ["body", "currency"], "msg": str(exc), "type": "unsupported_currency"}],
        ) from exc
    try:
        money.validate_charge_amount(amount, currency)
    except money.InvalidAmount as exc:
        raise InvalidAmount(
            f"price_amount: {exc}",
            errors=[{"loc": ["body", "price_amount"], "msg": str(exc), "type": "invalid_amount"}],
        ) from exc


# --- the vendor's own listings --------------------------------------------------------------


async def create_listing(
    session: AsyncSession, user_id: uuid.UUID, data: ListingCreate
) -> ListingRead:
    vendor = await vendors.require_vendor(session, user_id)
    validate_listing_price(data.price_amount, data.currency)
    listing = Listing(
        vendor_id=vendor.id,
        title=data.title,
        description=data.description,
        price_amount=data.price_amount,
        currency=data.currency,
        stock_quantity=data.stock_quantity,
        status=ListingStatus(data.status),
    )
    session.add(listing)
    await session.commit()
    await session.refresh(listing)
    return ListingRead.model_validate(listing)


async def _own_listing(
    session: AsyncSession, user_id: uuid.UUID, listing_id: uuid.UUID, *, lock: bool = False
) -> Listing:
    """The listing if it belongs to this vendor user; 404 otherwise (never 403)."""
    query = (
        select(Listing)
        .join(Vendor, Vendor.id == Listing.vendor_id)
        .where(Listing.id == listing_id, Vendor.user_id == user_id)
    )
    if lock:
        query = query.with_for_update(of=Listing)
    listing = await session.scalar(query.execution_options(populate_existing=True))
    if listing is None:
        raise ListingNotFound()
    return listing


async def get_listing(
    session: AsyncSession, user_id: uuid.UUID, listing_id: uuid.UUID
) -> ListingRead:
    return ListingRead.model_validate(await _own_listing(session, user_id, listing_id))


async def list_listings(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    status: ListingStatus | None,
    limit: int,
    cursor: str | None,
) -> ListingPage:
    if cursor:
        decode_cursor(cursor)  # a forged cursor is refused even when there is nothing to page
    vendor_id = await vendor_id_of(session, user_id)
    if vendor_id is None:
        return ListingPage(items=[], next_cursor=None)
    query = select(Listing).where(Listing.vendor_id == vendor_id)
    if status is not None:
        query = query.where(Listing.status == status)
    items, next_cursor = await _listing_page(session, query, cursor=cursor, limit=limit)
    return ListingPage(
        items=[ListingRead.model_validate(r) for r in items], next_cursor=next_cursor
    )


async def _set_status(session: AsyncSession, listing: Listing, to: ListingStatus) -> None:
    """The one place a listing's status changes: allowed only from `ALLOWED_FROM[to]`."""
    if listing.status is to:
        return
    changed = await session.scalar(
        update(Listing)
        .where(Listing.id == listing.id, Listing.status.in_(ALLOWED_FROM[to]))
        .values(status=to)
        .returning(Listing.id)
    )
    if changed is None:
        raise InvalidListingTransition(f"A listing cannot go from {listing.status} to {to}.")


async def update_listing(
    session: AsyncSession, user_id: uuid.UUID, listing_id: uuid.UUID, data: ListingUpdate
) -> ListingRead:
    listing = await _own_listing(session, user_id, listing_id, lock=True)
    sent = data.model_fields_set - {"status"}
    values: dict[str, Any] = {
        field: getattr(data, field)
        for field in sent
        # Required columns: an explicit null means "unchanged".
        if getattr(data, field) is not None or field == "description"
    }
    archived = listing.status is ListingStatus.archived
    if values and archived and data.status is not ListingStatus.draft:
        await session.rollback()
        raise ListingArchived()
    if "price_amount" in values or "currency" in values:
        try:
            validate_listing_price(
                values.get("price_amount", listing.price_amount),
                values.get("currency", listing.currency),
            )
        except (UnsupportedCurrency, InvalidAmount):
            await session.rollback()
            raise
    try:
        if data.status is not None:
            await _set_status(session, listing, data.status)
        if values:
            await session.execute(update(Listing).where(Listing.id == listing.id).values(**values))
    except InvalidListingTransition:
        await session.rollback()
        raise
    await session.commit()
    return ListingRead.model_validate(await _own_listing(session, user_id, listing_id))


async def archive_listing(session: AsyncSession, user_id: uuid.UUID, listing_id: uuid.UUID) -> None:
    """DELETE: archive (soft). Idempotent: archiving an archived listing is a no-op."""
    listing = await _own_listing(session, user_id, listing_id, lock=True)
    await _set_status(session, listing, ListingStatus.archived)
    await session.commit()


# --- the public storefront ------------------------------------------------------------------


def _public_query() -> Any:
    """Active listings of vendors that can take payments right now."""
    return (
        select(Listing)
        .join(Vendor, Vendor.id == Listing.vendor_id)
        .where(Listing.status == ListingStatus.active, Vendor.can_accept_payments_clause())
    )


async def _listing_page(
    session: AsyncSession, query: Select[Any], *, cursor: str | None, limit: int
) -> tuple[list[Listing], str | None]:
    """One page of `query`'s listings, newest first, and the cursor of the next page."""
    page = keyset_page(
        query, created_at=Listing.created_at, row_id=Listing.id, cursor=cursor, limit=limit
    )
    return split_page((await session.scalars(page)).all(), limit)


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_storefront(
    session: AsyncSession,
    *,
    vendor_id: uuid.UUID | None,
    currency: str | None,
    min_price: int | None,
    max_price: int | None,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> ListingPublicPage:
    if (min_price is not None or max_price is not None) and currency is None:
        raise PriceFilterNeedsCurrency()
    query = _public_query()
    if vendor_id is not None:
        query = query.where(Listing.vendor_id == vendor_id)
    if currency is not None:
        query = query.where(Listing.currency == currency.lower())
    if min_price is not None:
        query = query.where(Listing.price_amount >= min_price)
    if max_price is not None:
        query = query.where(Listing.price_amount <= max_price)
    if q and q.strip():
        query = query.where(Listing.title.ilike(f"%{escape_like(q.strip())}%", escape="\\"))
    items, next_cursor = await _listing_page(session, query, cursor=cursor, limit=limit)
    return ListingPublicPage(
        items=[ListingPublic.model_validate(r) for r in items], next_cursor=next_cursor
    )


async def get_public_listing(session: AsyncSession, listing_id: uuid.UUID) -> ListingPublic:
    listing = await session.scalar(_public_query().where(Listing.id == listing_id))
    if listing is None:
        raise ListingNotFound()
    return ListingPublic.model_validate(listing)
