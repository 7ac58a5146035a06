"""`/v1/vendor/profile`: the signed-in vendor's own profile."""

from __future__ import annotations

from fastapi import APIRouter

from marketplace_api.deps import CurrentVendorUser, SessionDep
from marketplace_api.errors import problem_responses
from marketplace_api.vendors import service
from marketplace_api.vendors.exceptions import (
    UnsupportedCurrency,
    VendorCountryLocked,
    VendorProfileNotFound,
)
from marketplace_api.vendors.schemas import VendorProfileRead, VendorProfileUpdate

router = APIRouter(prefix="/profile", tags=["vendor"])


@router.get(
    "",
    summary="Your vendor profile",
    responses=problem_responses(VendorProfileNotFound),
)
async def get_vendor_profile(user: CurrentVendorUser, session: SessionDep) -> VendorProfileRead:
    return VendorProfileRead.model_validate(await service.get_profile(session, user.id))


@router.put(
    "",
    summary="Create or replace your vendor profile",
    description="The first call creates the vendor; the country becomes the Stripe account's "
    "country and cannot change once `POST /v1/vendor/payments/setup` created the account.",
    responses=problem_responses(UnsupportedCurrency, VendorCountryLocked),
)
async def put_vendor_profile(
    body: VendorProfileUpdate, user: CurrentVendorUser, session: SessionDep
) -> VendorProfileRead:
    return VendorProfileRead.model_validate(await service.upsert_profile(session, user.id, body))
