"""`/v1/admin/vendors`: the operator's view of vendors and their platform policy."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from marketplace_api.api.params import CursorQuery
from marketplace_api.deps import SessionDep
from marketplace_api.errors import problem_responses
from marketplace_api.pagination import DEFAULT_LIMIT, MAX_LIMIT, InvalidCursor
from marketplace_api.vendors import service
from marketplace_api.vendors.exceptions import VendorNotFound
from marketplace_api.vendors.models import VendorStatus
from marketplace_api.vendors.schemas import VendorAdminPage, VendorAdminRead, VendorAdminUpdate

router = APIRouter(prefix="/vendors", tags=["admin"])


@router.get(
    "",
    summary="List vendors, newest first, optionally by status",
    responses=problem_responses(InvalidCursor),
)
async def list_vendors(
    session: SessionDep,
    status: VendorStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> VendorAdminPage:
    return await service.list_vendors(session, status=status, limit=limit, cursor=cursor)


@router.patch(
    "/{vendor_id}",
    summary="Set a vendor's fee or charge-type override, or suspend it",
    description="Only the fields sent change; `null` clears an override. A suspended vendor "
    "cannot take new orders and leaves the storefront.",
    responses=problem_responses(VendorNotFound),
)
async def update_vendor(
    vendor_id: uuid.UUID, body: VendorAdminUpdate, session: SessionDep
) -> VendorAdminRead:
    return await service.admin_update_vendor(session, vendor_id, body)
