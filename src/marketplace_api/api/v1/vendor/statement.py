"""Vendor: its statement, from the money-movement ledger (GET /v1/vendor/payments)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from marketplace_api.api.params import CursorQuery
from marketplace_api.deps import CurrentVendorUser, SessionDep
from marketplace_api.errors import problem_responses
from marketplace_api.ledger.models import MovementKind
from marketplace_api.pagination import InvalidCursor
from marketplace_api.reports import service as reports
from marketplace_api.reports.schemas import MovementPage

router = APIRouter(prefix="/payments", tags=["vendor"])


@router.get(
    "",
    summary="Your statement: every money movement of your orders and payouts, newest first",
    description=(
        "Charges, platform fees, transfers to you, refunds and their reversals, disputes and "
        "payouts, each with its Stripe id. Keyset pagination with `cursor`."
    ),
    responses=problem_responses(InvalidCursor),
)
async def get_vendor_statement(
    session: SessionDep,
    user: CurrentVendorUser,
    kind: Annotated[MovementKind | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: CursorQuery = None,
) -> MovementPage:
    return await reports.vendor_statement(session, user.id, kind=kind, limit=limit, cursor=cursor)
