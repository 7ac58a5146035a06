"""`/v1/vendor/listings`: the signed-in vendor's own listings (others' answer 404)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from marketplace_api.api.params import CursorQuery
from marketplace_api.catalog import service
from marketplace_api.catalog.exceptions import (
    InvalidAmount,
    InvalidCursor,
    InvalidListingTransition,
    ListingArchived,
    ListingNotFound,
    UnsupportedCurrency,
)
from marketplace_api.catalog.models import ListingStatus
from marketplace_api.catalog.schemas import ListingCreate, ListingPage, ListingRead, ListingUpdate
from marketplace_api.deps import CurrentVendorUser, SessionDep
from marketplace_api.errors import problem_responses
from marketplace_api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from marketplace_api.vendors.exceptions import VendorProfileRequired

router = APIRouter(prefix="/listings", tags=["vendor"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a listing",
    description="Price in the currency's minor unit, at least Stripe's minimum charge.",
    responses=problem_responses(VendorProfileRequired, UnsupportedCurrency, InvalidAmount),
)
async def create_listing(
    body: ListingCreate, user: CurrentVendorUser, session: SessionDep
) -> ListingRead:
    return await service.create_listing(session, user.id, body)


@router.get(
    "",
    summary="Your listings, newest first",
    responses=problem_responses(InvalidCursor),
)
async def list_listings(
    user: CurrentVendorUser,
    session: SessionDep,
    status: ListingStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> ListingPage:
    return await service.list_listings(session, user.id, status=status, limit=limit, cursor=cursor)


@router.get(
    "/{listing_id}",
    summary="One of your listings",
    responses=problem_responses(ListingNotFound),
)
async def get_listing(
    listing_id: uuid.UUID, user: CurrentVendorUser, session: SessionDep
) -> ListingRead:
    return await service.get_listing(session, user.id, listing_id)


@router.patch(
    "/{listing_id}",
    summary="Change a listing (only the fields sent)",
    responses=problem_responses(
        ListingNotFound,
        ListingArchived,
        InvalidListingTransition,
        UnsupportedCurrency,
        InvalidAmount,
    ),
)
async def update_listing(
    listing_id: uuid.UUID, body: ListingUpdate, user: CurrentVendorUser, session: SessionDep
) -> ListingRead:
    return await service.update_listing(session, user.id, listing_id, body)


@router.delete(
    "/{listing_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Archive a listing (soft delete; idempotent)",
    description="The listing leaves the storefront and is kept for order history. Set status "
    "back to `draft` with PATCH to reuse it.",
    responses=problem_responses(ListingNotFound),
)
async def delete_listing(
    listing_id: uuid.UUID, user: CurrentVendorUser, session: SessionDep
) -> None:
    await service.archive_listing(session, user.id, listing_id)
