"""`/v1/platform/vendors`: public vendor pages (no token)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from marketplace_api.deps import SessionDep
from marketplace_api.errors import problem_responses
from marketplace_api.vendors import service
from marketplace_api.vendors.exceptions import VendorNotFound
from marketplace_api.vendors.schemas import VendorPublic

router = APIRouter(prefix="/vendors", tags=["platform"])


@router.get(
    "/{vendor_id}",
    summary="A vendor's public profile (vendors that can take payments)",
    responses=problem_responses(VendorNotFound),
)
async def get_storefront_vendor(vendor_id: uuid.UUID, session: SessionDep) -> VendorPublic:
    return VendorPublic.model_validate(await service.get_public_vendor(session, vendor_id))
