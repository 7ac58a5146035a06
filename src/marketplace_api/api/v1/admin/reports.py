"""Admin: money reports from the ledger."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from marketplace_api.deps import SessionDep
from marketplace_api.errors import problem_responses
from marketplace_api.inputs import UtcTimestamp
from marketplace_api.reports import service as reports
from marketplace_api.reports.schemas import SummaryRead
from marketplace_api.reports.service import InvalidPeriod

router = APIRouter(prefix="/reports", tags=["admin"])


@router.get(
    "/summary",
    summary="Per currency: gross volume, platform fees, refunds, transfers, held balance",
    description=(
        "Flows of movements with `from <= occurred_at < to`; `held_balance` is what the platform "
        "holds for vendors at `to` (separate charges not yet released)."
    ),
    responses=problem_responses(InvalidPeriod),
)
async def get_summary_report(
    session: SessionDep,
    period_from: Annotated[UtcTimestamp, Query(alias="from", description="Naive: UTC.")],
    period_to: Annotated[UtcTimestamp, Query(alias="to", description="Naive: UTC.")],
) -> SummaryRead:
    return await reports.summary(session, start=period_from, end=period_to)
