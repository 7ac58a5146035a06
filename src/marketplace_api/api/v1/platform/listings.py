"""`/v1/platform/listings`: the public storefront (no token)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from marketplace_api.api.params import CursorQuery
from marketplace_api.catalog import service
from marketplace_api.catalog.exceptions import (
    InvalidCursor,
    ListingNotFound,
    PriceFilterNeedsCurrency,
)
from marketplace_api.catalog.schemas import ListingPublic, ListingPublicPage
from marketplace_api.deps import SessionDep
from marketplace_api.errors import problem_responses
from marketplace_api.inputs import Text
from marketplace_api.money import MAXIMUM_CHARGE_AMOUNT
from marketplace_api.pagination import DEFAULT_LIMIT, MAX_LIMIT

router = APIRouter(prefix="/listings", tags=["platform"])


@router.get(
    "",
    summary="Browse listings (active, from vendors that can take payments)",
    description="Newest first, stable order (`created_at`, `id`), keyset pagination: pass "
    "`next_cursor` back as `cursor`. `q` matches the title (case-insensitive substring). "
    "`min_price`/`max_price` are minor units and need `currency`.",
    responses=problem_responses(InvalidCursor, PriceFilterNeedsCurrency),
)
async def list_storefront_listings(
    session: SessionDep,
    vendor_id: uuid.UUID | None = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Za-z]{3}$")] = None,
    min_price: Annotated[int | None, Query(ge=0, le=MAXIMUM_CHARGE_AMOUNT)] = None,
    max_price: Annotated[int | None, Query(ge=0, le=MAXIMUM_CHARGE_AMOUNT)] = None,
    q: Annotated[Text | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> ListingPublicPage:
    return await service.list_storefront(
        session,
        vendor_id=vendor_id,
        currency=currency,
        min_price=min_price,
        max_price=max_price,
        q=q,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/{listing_id}",
    summary="One listing of the storefront",
    responses=problem_responses(ListingNotFound),
)
async def get_storefront_listing(listing_id: uuid.UUID, session: SessionDep) -> ListingPublic:
    return await service.get_public_listing(session, listing_id)
