"""Admin: disputes (chargebacks) as Stripe reports them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from marketplace_api.api.params import CursorQuery
from marketplace_api.deps import SessionDep
from marketplace_api.disputes import service
from marketplace_api.disputes.schemas import DisputePage
from marketplace_api.errors import problem_responses
from marketplace_api.pagination import InvalidCursor

router = APIRouter(prefix="/disputes", tags=["admin"])


@router.get(
    "",
    summary="List disputes, newest first (`open=true` for those needing attention)",
    responses=problem_responses(InvalidCursor),
)
async def list_disputes(
    session: SessionDep,
    is_open: Annotated[bool | None, Query(alias="open")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: CursorQuery = None,
) -> DisputePage:
    return await service.list_disputes(session, is_open=is_open, limit=limit, cursor=cursor)
