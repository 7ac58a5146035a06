"""Admin view of the Stripe event store: list, inspect and retry events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from marketplace_api.api.params import CursorQuery
from marketplace_api.deps import SessionDep
from marketplace_api.errors import problem_responses
from marketplace_api.inputs import Text
from marketplace_api.webhooks import service
from marketplace_api.webhooks.exceptions import EventAlreadyProcessed, EventNotFound
from marketplace_api.webhooks.models import EventStatus
from marketplace_api.webhooks.schemas import StripeEventDetail, StripeEventPage, StripeEventRead

router = APIRouter(prefix="/webhook-events", tags=["admin"])

EventId = Annotated[Text, Path(max_length=255, examples=["evt_1QaBcD2eZvKYlo2C1eVnT001"])]


@router.get(
    "",
    summary="List received Stripe events, newest first",
    responses=problem_responses(service.InvalidCursor),
)
async def list_webhook_events(
    session: SessionDep,
    status: Annotated[EventStatus | None, Query()] = None,
    event_type: Annotated[
        Text | None,
        Query(alias="type", max_length=100, examples=["payment_intent.succeeded"]),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: CursorQuery = None,
) -> StripeEventPage:
    page = await service.list_events(
        session, status=status, event_type=event_type, limit=limit, cursor=cursor
    )
    return StripeEventPage(
        items=[StripeEventRead.model_validate(e) for e in page.items],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{event_id}",
    summary="Show one Stripe event with its payload",
    responses=problem_responses(EventNotFound),
)
async def get_webhook_event(event_id: EventId, session: SessionDep) -> StripeEventDetail:
    return StripeEventDetail.model_validate(await service.get_event(session, event_id))


@router.post(
    "/{event_id}/retry",
    summary="Apply a failed, pending or ignored event again, now",
    description="A processed event is final (409 `event_already_processed`).",
    responses=problem_responses(EventNotFound, EventAlreadyProcessed),
)
async def retry_webhook_event(event_id: EventId, session: SessionDep) -> StripeEventDetail:
    return StripeEventDetail.model_validate(await service.retry_event(session, event_id))
